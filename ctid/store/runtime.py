"""The store inside the daemon: engine, migrations, today's tallies, the writer's lifetime.

``open_store`` is an async context manager; the daemon runs ``store.writer.run()`` in its
TaskGroup and hands the writer its rows (see docs/store.md, "Wiring").  A database that is
down at start does not stop the daemon: rows queue and spool, and the migration (or schema
check) runs before the writer's first successful write.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

import structlog
from sqlalchemy import Engine

from ctid.ami.events import CdrWritten
from ctid.errors import StoreError
from ctid.store.directory import SeatInfo, sync_directory
from ctid.store.engine import ensure_sqlite_dir, make_engine, sqlite_path, store_url
from ctid.store.migrate import check_schema, upgrade_engine
from ctid.store.queries import restore_tallies
from ctid.store.settings import StoreSettings
from ctid.store.writer import StoreWriter
from ctid.tracker.tallies import DailyTallies

log = structlog.get_logger("ctid.store")

CLOSE_GRACE_S = 5.0


@dataclass
class Store:
    engine: Engine
    writer: StoreWriter

    def cdr_sink(self, pbx: str) -> Callable[[CdrWritten], None]:
        """What a PBX's pipeline calls for each ``Cdr`` event it normalises."""
        return lambda cdr: self.writer.record_cdr(pbx, cdr)


def open_engine(url: str, *, auto_upgrade: bool) -> Engine:
    """An engine on a database at the current schema (blocking).

    ``auto_upgrade`` migrates; otherwise a database behind this ctid is refused.
    """
    ensure_sqlite_dir(url)
    engine = make_engine(url)
    try:
        (upgrade_engine if auto_upgrade else check_schema)(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def open_existing(url: str) -> Engine:
    """An engine for reading; a SQLite file that does not exist is an error, not created."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise StoreError(f"no database at {path}: run `ctid db upgrade` or the daemon first")
    engine = make_engine(url)
    try:
        check_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


@contextlib.asynccontextmanager
async def open_store(
    settings: StoreSettings,
    tallies: DailyTallies,
    *,
    seats: Iterable[SeatInfo] = (),
    pbxs: Iterable[str] = (),
    url: str | None = None,
    now: Callable[[], float] = time.time,
) -> AsyncIterator[Store]:
    """Engine and writer for the daemon's lifetime; today's tallies restored from the store.

    On exit the writer flushes for up to ``CLOSE_GRACE_S`` and spools the rest.
    """
    url = url or store_url(settings)
    await asyncio.to_thread(ensure_sqlite_dir, url)
    engine = make_engine(url)
    try:
        today = dt.datetime.fromtimestamp(now(), tallies.tz).date()
        ready = await asyncio.to_thread(
            _prepare, engine, settings, tallies, today, (list(seats), list(pbxs))
        )
        prepare = None if ready else (upgrade_engine if settings.auto_upgrade else check_schema)
        writer = StoreWriter.from_settings(engine, settings, prepare=prepare)
        try:
            yield Store(engine, writer)
        finally:
            await writer.close(CLOSE_GRACE_S)
    finally:
        engine.dispose()


def _prepare(
    engine: Engine,
    settings: StoreSettings,
    tallies: DailyTallies,
    today: dt.date,
    directory: tuple[list[SeatInfo], list[str]],
) -> bool:
    """Migrate, copy the directory, restore today; ``False`` if the database is not usable."""
    try:
        (upgrade_engine if settings.auto_upgrade else check_schema)(engine)
        sync_directory(engine, *directory)
        # Only this instance's PBXs (others may share the database); none named: all of them.
        restored = restore_tallies(engine, tallies, today, directory[1] or None)
    except StoreError as err:
        log.warning("store_unavailable_at_start", error=str(err))
        return False
    log.info("store_ready", restored_seats=restored, day=today.isoformat())
    return True
