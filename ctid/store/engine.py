"""Engines for the store: SQLite (WAL) in the data dir by default, PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ctid.errors import StoreError
from ctid.store.settings import StoreSettings

SQLITE_BUSY_TIMEOUT_MS = 5000
"""A reader (``ctid report``) holding the file briefly must not fail the daemon's writes."""
EXPECTED = "sqlite:///PATH or postgresql://USER@HOST/DATABASE"
PG_CONNECT_TIMEOUT_S = 5
"""Bounds how long one flush attempt can hang on an unreachable server."""


def store_url(settings: StoreSettings) -> str:
    return settings.url or f"sqlite:///{settings.data_dir / 'ctid.db'}"


def parse_url(url: str) -> URL:
    """``postgresql://`` → ``postgresql+psycopg://`` (psycopg 3 is the driver ctid installs)."""
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise StoreError(f"store url: not a database URL ({EXPECTED})") from err
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"store url: {parsed.get_backend_name()} is not supported ({EXPECTED})")
    return parsed


def make_engine(url: str) -> Engine:
    """An engine with ctid's connection settings; the caller disposes it."""
    parsed = parse_url(url)
    options: dict[str, Any] = {
        # Error messages must not carry row values: a row holds a customer number.
        "hide_parameters": True,
        "pool_pre_ping": True,
    }
    if parsed.get_backend_name() == "postgresql":
        options["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    try:
        engine = create_engine(parsed, **options)
    except ImportError as err:
        raise StoreError(f"no driver for {parsed.drivername}: install ctid[postgres]") from err
    except (ArgumentError, NoSuchModuleError) as err:
        raise StoreError(f"store url {redact_url(url)!r}: {err}") from err
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (``None`` for other backends and ``:memory:``)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "")


def ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a SQLite file (blocking: call it in a thread from async code)."""
    path = sqlite_path(url)
    if path is not None:
        try:
            # Owner-only when ctid creates it: the database holds customer numbers.
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"{path.parent}: cannot create ({err.strerror})") from err


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets `ctid report` read while the daemon writes; NORMAL sync is durable
        # across application crashes in WAL mode, which is what the spool protects anyway.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable>"
