from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from ctid.errors import StoreError
from ctid.store.engine import make_engine, parse_url, store_url
from ctid.store.migrate import (
    alembic_config,
    check_schema,
    current_revision,
    head_revision,
    upgrade,
)
from ctid.store.schema import metadata
from ctid.store.settings import StoreSettings


def test_migrations_create_exactly_the_declared_schema(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        assert current_revision(engine) == head_revision()
        check_schema(engine)
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_downgrade_to_nothing_and_back(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        assert "calls" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_an_unmigrated_database_is_refused_with_one_line(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with pytest.raises(StoreError, match=r"^the database is empty: run `ctid db upgrade`"):
            check_schema(engine)
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    finally:
        engine.dispose()


def test_upgrade_creates_the_data_dir(tmp_path: Path) -> None:
    settings = StoreSettings(data_dir=tmp_path / "a" / "b")
    url = store_url(settings)
    assert url == f"sqlite:///{tmp_path / 'a' / 'b' / 'ctid.db'}"
    upgrade(url)
    assert (tmp_path / "a" / "b" / "ctid.db").exists()


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    assert parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert parse_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nonsense", "not a database URL"),
        ("mysql://u@h/db", "mysql is not supported"),
    ],
)
def test_bad_urls_are_one_clear_line(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        make_engine(url)
