"""The lock's own database session: blocking SQLAlchemy calls, made from a worker thread.

A session-level advisory lock lives exactly as long as the session that took it, so one
connection is held for the whole tenure and PostgreSQL frees the lock when this process ends
or its connection dies.  The connection runs in autocommit: no transaction stays open on it.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import NullPool

from ctid.errors import StoreError
from ctid.store.engine import parse_url, redact_url

APPLICATION_NAME = "ctid-ha"
"""Shows in ``pg_stat_activity``, so an operator can tell the lock's session from the writer's."""
KEEPALIVE_PROBES = 3


def timeout_step(check_seconds: float) -> int:
    """Whole seconds (libpq and the kernel count in seconds) for one check's timeout."""
    return max(1, math.ceil(check_seconds))


def connect_args(check_seconds: float) -> dict[str, Any]:
    """libpq settings bounding how long each end trusts a silent peer.

    ctid gives up on the connection within two steps (a check interval, then the check's own
    timeout, ``tcp_user_timeout`` for unacknowledged data).  The server drops the session, and
    so frees the lock, only after five steps of silence (keep-alive idle for two, then three
    probes one apart), set here for this session alone.  An active cut off from the database
    therefore stops before a standby can take the lock.
    """
    step = timeout_step(check_seconds)
    server = {
        "tcp_keepalives_idle": 2 * step,
        "tcp_keepalives_interval": step,
        "tcp_keepalives_count": KEEPALIVE_PROBES,
        "statement_timeout": step * 1000,
    }
    return {
        "application_name": APPLICATION_NAME,
        "connect_timeout": max(2, step),  # libpq treats anything below 2 s as 2 s
        "keepalives": 1,
        "keepalives_idle": step,
        "keepalives_interval": step,
        "keepalives_count": KEEPALIVE_PROBES,
        "tcp_user_timeout": step * 1000,
        "options": " ".join(f"-c {name}={value}" for name, value in server.items()),
    }


def lock_engine(url: str, check_seconds: float) -> Engine:
    """An engine that opens one plain connection per call (no pool: the connection *is* the
    lock, and closing it must really close it)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise StoreError(f"ha: the lock needs PostgreSQL, not {parsed.get_backend_name()}")
    try:
        return create_engine(
            parsed,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            hide_parameters=True,
            connect_args=connect_args(check_seconds),
        )
    except ImportError as err:
        raise StoreError(f"no driver for {parsed.drivername}: install ctid[postgres]") from err
    except (ArgumentError, NoSuchModuleError) as err:
        raise StoreError(f"store url {redact_url(url)!r}: {err}") from err


class LockSession:
    """One open connection, trying for (then holding) one advisory lock."""

    def __init__(self, connection: Connection, key: int) -> None:
        self._connection = connection
        self._key = key
        self.backend_pid: int = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()

    @classmethod
    def open(cls, engine: Engine, key: int) -> LockSession:
        connection = engine.connect()
        try:
            return cls(connection, key)
        except BaseException:
            connection.close()
            raise

    def try_lock(self) -> bool:
        """Take the lock if it is free (or already ours); never waits for it."""
        query = text("SELECT pg_try_advisory_lock(:key)")
        return bool(self._connection.execute(query, {"key": self._key}).scalar_one())

    def ping(self) -> None:
        """Raises if the connection, and with it the lock, is gone."""
        self._connection.execute(text("SELECT 1")).scalar_one()

    def close(self) -> None:
        """Ends the session: PostgreSQL releases every lock it held."""
        self._connection.close()
