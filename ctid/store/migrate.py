"""Alembic migrations, run from code: ``ctid db upgrade`` and the upgrade on start."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ctid.errors import StoreError
from ctid.store.engine import ensure_sqlite_dir, make_engine

if TYPE_CHECKING:  # the migrations import it when they need it
    from ctid.store.number_protect import NumberKeys

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "ctid ships at least one migration"
    return head


def upgrade(url: str, revision: str = "head", numbers: NumberKeys | None = None) -> None:
    """Bring the database at ``url`` to ``revision`` (blocking; creates a SQLite file's dir).

    ``numbers``: the keys migration 0005 converts stored numbers with; without them it
    refuses a database that holds numbers (an empty one needs none).
    """
    ensure_sqlite_dir(url)
    engine = make_engine(url)
    try:
        upgrade_engine(engine, revision, numbers)
    finally:
        engine.dispose()


def upgrade_engine(
    engine: Engine, revision: str = "head", numbers: NumberKeys | None = None
) -> None:
    _run(engine, numbers, lambda config: command.upgrade(config, revision))


def downgrade_engine(engine: Engine, revision: str, numbers: NumberKeys | None = None) -> None:
    """Back to ``revision``; refused (nothing changed) where a step cannot keep the data."""
    _run(engine, numbers, lambda config: command.downgrade(config, revision))


def _run(engine: Engine, numbers: NumberKeys | None, step: Callable[[Config], None]) -> None:
    config = alembic_config()
    config.attributes["numbers"] = numbers
    try:
        with engine.connect() as connection, _ddl_in_transaction(connection):
            config.attributes["connection"] = connection
            step(config)
            connection.commit()
    except SQLAlchemyError as err:
        raise StoreError(f"database migration failed: {describe_error(err)}") from err


@contextlib.contextmanager
def _ddl_in_transaction(connection: Connection) -> Iterator[None]:
    """SQLite: one explicit transaction for DDL too, so a refused step undoes the steps before
    it (pysqlite begins transactions only before DML by itself)."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    previous = raw.isolation_level  # type: ignore[union-attr]
    raw.isolation_level = None  # type: ignore[union-attr]
    try:
        connection.exec_driver_sql("BEGIN")
        yield
    finally:
        if connection.in_transaction() and raw.in_transaction:  # type: ignore[union-attr]
            connection.rollback()
        raw.isolation_level = previous  # type: ignore[union-attr]


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err


def check_schema(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not the one this ctid was built for."""
    current = current_revision(engine)
    if current != head_revision():
        state = "empty" if current is None else f"at revision {current}"
        raise StoreError(f"the database is {state}: run `ctid db upgrade` first")


def describe_error(err: BaseException) -> str:
    """One line naming the driver's complaint, without SQL or parameters (they hold numbers)."""
    cause = getattr(err, "orig", None) or err
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else 'no detail'}"
