"""Databases for the store tests: a SQLite file per test, and a PostgreSQL database per
session (dropped afterwards) whose schema is emptied before each test that uses it.

PostgreSQL is the one at 127.0.0.1:5432 (user postgres, trust auth; scripts/ensure-postgres.sh
sets one up), or the server URL in ``CTID_TEST_POSTGRES``; when none answers, its tests are
skipped with the reason.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

PG_SERVER = os.environ.get("CTID_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")


def _admin_engine() -> Engine:
    return create_engine(
        f"{PG_SERVER}/postgres",
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    admin = _admin_engine()
    name = f"ctid_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as err:
        admin.dispose()
        reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        pytest.skip(
            f"PostgreSQL not reachable at {PG_SERVER} ({reason}); "
            "run scripts/ensure-postgres.sh as root"
        )
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session database with an empty ``public`` schema: as good as a new database."""
    engine = create_engine(pg_database)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    return pg_database


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ctid.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database of each backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url
