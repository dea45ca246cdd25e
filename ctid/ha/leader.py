"""Standby until the advisory lock is ours, then watch the connection that holds it.

:meth:`LeaderLock.acquire` returns once this instance holds the lock, trying every
``retry_seconds`` meanwhile (a database outage only delays it), and after a hand-over pause
that lets a previous holder notice it lost the lock.  :meth:`LeaderLock.watch`
runs beside the active daemon and raises :class:`LockLostError` as soon as the lock's
connection fails a check: the daemon's TaskGroup then stops the AMI links and ctid exits, so
that two instances are never active at once.  Blocking driver calls run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from types import TracebackType
from typing import Any, Literal, NoReturn, Self

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ctid.errors import CtidError
from ctid.ha.session import LockSession, lock_engine, timeout_step
from ctid.ha.settings import HaSettings
from ctid.store.migrate import describe_error

log = structlog.get_logger("ctid.ha")

_DRIVER_ERRORS = (SQLAlchemyError, OSError)


class Role(enum.StrEnum):
    STANDBY = "standby"
    ACTIVE = "active"
    LOST = "lost"


class LockLostError(CtidError):
    """The active instance lost the database session that holds its lock."""


class LeaderLock:
    def __init__(
        self, engine: Engine, key: int, *, retry_seconds: float, check_seconds: float
    ) -> None:
        self._engine = engine
        self.key = key
        self._retry_seconds = retry_seconds
        self._check_seconds = check_seconds
        self._check_timeout = timeout_step(check_seconds)
        self.handover_seconds = check_seconds + self._check_timeout
        """How long a previous holder may take to notice that the server ended its session."""
        self._session: LockSession | None = None
        # A check that timed out may still be running in its thread: the connection is left
        # alone then (closing it under a running query is unsafe); process exit closes it.
        self._abandoned = False
        self._waiting: Literal["standby", "unavailable"] | None = None
        self.role = Role.STANDBY

    @classmethod
    def from_settings(cls, ha: HaSettings, url: str) -> LeaderLock:
        return cls(
            lock_engine(url, ha.check_seconds),
            ha.lock_key,
            retry_seconds=ha.retry_seconds,
            check_seconds=ha.check_seconds,
        )

    @property
    def backend_pid(self) -> int | None:
        """The server process of the lock's session (``pg_stat_activity.pid``)."""
        return self._session.backend_pid if self._session is not None else None

    def describe(self) -> dict[str, Any]:
        return {"role": self.role.value, "lock_key": self.key}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- standby ----------------------------------------------------------------------

    async def acquire(self) -> None:
        """Return once the lock is ours and any previous holder has stopped."""
        while True:
            if await self._try_once():
                break
            await asyncio.sleep(self._retry_seconds)
        # When the server ended the previous holder's session (killed, restarted), that
        # instance learns it only at its next check: wait that long before tracking.
        log.info("ha_lock_taken", lock_key=self.key, handover_seconds=self.handover_seconds)
        await asyncio.sleep(self.handover_seconds)
        self.role = Role.ACTIVE
        log.info("ha_active", lock_key=self.key, backend_pid=self.backend_pid)

    async def _try_once(self) -> bool:
        try:
            if self._session is None:
                self._session = await asyncio.to_thread(LockSession.open, self._engine, self.key)
            held = await asyncio.to_thread(self._session.try_lock)
        except _DRIVER_ERRORS as err:
            await self._close_session()
            self._note("unavailable", error=describe_error(err))
            return False
        if not held:
            self._note("standby")
        return held

    def _note(self, waiting: Literal["standby", "unavailable"], **context: str) -> None:
        """Log when the reason for waiting changes, not on every retry."""
        if waiting == self._waiting:
            return
        self._waiting = waiting
        if waiting == "standby":
            log.info("ha_standby", lock_key=self.key, retry_seconds=self._retry_seconds)
        else:
            log.warning("ha_database_unavailable", retry_seconds=self._retry_seconds, **context)

    # --- active -----------------------------------------------------------------------

    async def watch(self) -> NoReturn:
        """Check the lock's connection every ``check_seconds``; raise :class:`LockLostError`
        when a check fails or gets no answer in time."""
        session = self._session
        if session is None or self.role is not Role.ACTIVE:
            raise RuntimeError("watch() needs the lock: call acquire() first")
        while True:
            await asyncio.sleep(self._check_seconds)
            try:
                await asyncio.wait_for(asyncio.to_thread(session.ping), self._check_timeout)
            except TimeoutError as err:
                self._abandoned = True
                self._lose(f"no answer within {self._check_timeout} s", err)
            except _DRIVER_ERRORS as err:
                self._lose(describe_error(err), err)

    def _lose(self, why: str, err: BaseException) -> NoReturn:
        self.role = Role.LOST
        log.error("ha_lost", lock_key=self.key, error=why, action="stepping down")
        raise LockLostError(
            f"ha: lost the database connection holding the lock ({why}); "
            "stopped tracking so that the standby can take over"
        ) from err

    # --- end --------------------------------------------------------------------------

    async def close(self) -> None:
        """Release the lock (by ending its session) and the engine."""
        await self._close_session()
        self._engine.dispose()

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is None or self._abandoned:
            return
        with contextlib.suppress(*_DRIVER_ERRORS):
            await asyncio.to_thread(session.close)
