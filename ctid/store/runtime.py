"""The store inside the daemon: engine, migrations, today's tallies, the writer's lifetime.

``open_store`` is an async context manager; the daemon runs ``store.writer.run()`` in its
TaskGroup and hands the writer its rows (see docs/store.md, "Wiring").  A database that is
down at start does not stop the daemon: rows queue and spool, and the migration (or schema
check) runs before the writer's first successful write.  Stored quota adjustments are loaded
at start too (``Store.adjustments``), or later by ``restore_adjustments_later``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Engine

from ctid.ami.events import CdrWritten
from ctid.errors import StoreError
from ctid.policy.adjustments import Adjustments
from ctid.store.adjustments import (
    RESTORE_DAYS,
    StoredAdjustments,
    adjustment_row,
    load_adjustments,
    restore,
    restore_when_reachable,
)
from ctid.store.closing import DayCloser
from ctid.store.directory import Places, SeatInfo, sync_directory, sync_places
from ctid.store.engine import ensure_sqlite_dir, make_engine, sqlite_path, store_url
from ctid.store.migrate import check_schema, upgrade_engine
from ctid.store.number_protect import NumberKeys
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
    numbers: NumberKeys
    """What call numbers are hashed, masked and sealed with (the writer's, the backfill's)."""
    adjustments: StoredAdjustments | None = None
    """Quota adjustments loaded at start; ``None`` when the database was not usable then."""
    spool: Path | None = None
    pbxs: tuple[str, ...] = ()
    restored_day: dt.date | None = None
    """The day restored into the live tallies at start; ``None`` when the database was not
    usable then."""

    def day_closer(self, tallies: DailyTallies, delay_s: float) -> DayCloser:
        """What closes each settled day (``DayCloser.run``, owned by the daemon's TaskGroup)."""
        return DayCloser(
            self.engine, self.writer.put, tallies, delay_s, self.restored_day, self.pbxs or None
        )

    def cdr_sink(self, pbx: str) -> Callable[[CdrWritten], None]:
        """What a PBX's pipeline calls for each ``Cdr`` event it normalises."""
        return lambda cdr: self.writer.record_cdr(pbx, cdr)

    def keep_adjustments(self, adjustments: Adjustments) -> None:
        """Store every new entry through the writer; put the stored ones back.

        Not loaded at start: ``adjustments`` refuses new entries (their ids could collide)
        until :meth:`restore_adjustments_later` has loaded them.
        """
        adjustments.on_record = lambda entry: self.writer.put([adjustment_row(entry)])
        if self.adjustments is not None:
            restore(adjustments, self.adjustments)
        else:
            adjustments.restored = False

    def restore_adjustments_later(
        self, adjustments: Adjustments, tz: ZoneInfo
    ) -> Coroutine[Any, Any, None]:
        """The task that loads the adjustments once the database answers."""
        return restore_when_reachable(self.engine, adjustments, lambda: _since(tz), self.spool)


def open_engine(url: str, *, auto_upgrade: bool, numbers: NumberKeys | None = None) -> Engine:
    """An engine on a database at the current schema (blocking).

    ``auto_upgrade`` migrates (with ``numbers`` for the stored numbers); otherwise a database
    behind this ctid is refused.
    """
    ensure_sqlite_dir(url)
    engine = make_engine(url)
    try:
        _schema_step(auto_upgrade, numbers)(engine)
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
    places: Places | None = None,
    url: str | None = None,
    now: Callable[[], float] = time.time,
    numbers: NumberKeys | None = None,
) -> AsyncIterator[Store]:
    """Engine and writer for the daemon's lifetime; today's tallies restored from the store.

    ``numbers``: the daemon passes :meth:`NumberKeys.from_settings` (the region may come
    from the compliance policy); by default ``[store]`` alone decides. On exit the writer
    flushes for up to ``CLOSE_GRACE_S`` and spools the rest.
    """
    url = url or store_url(settings)
    numbers = numbers or NumberKeys.from_store(settings)
    await asyncio.to_thread(numbers.sealer)  # a bad encryption key stops the start: one line
    await asyncio.to_thread(ensure_sqlite_dir, url)
    engine = make_engine(url)
    try:
        today = dt.datetime.fromtimestamp(now(), tallies.tz).date()
        spool = settings.spool_path if settings.spool_rows else None
        step = _schema_step(settings.auto_upgrade, numbers)
        pbx_names = list(pbxs)
        stored = await asyncio.to_thread(
            _prepare, engine, step, tallies, today, (list(seats), pbx_names), spool, places
        )
        prepare = None if stored is not None else step
        writer = StoreWriter.from_settings(engine, settings, numbers, prepare=prepare)
        restored = today if stored is not None else None
        try:
            yield Store(engine, writer, numbers, stored, spool, tuple(pbx_names), restored)
        finally:
            await writer.close(CLOSE_GRACE_S)
    finally:
        engine.dispose()


def _schema_step(auto_upgrade: bool, numbers: NumberKeys | None) -> Callable[[Engine], None]:
    """Migrate (converting stored numbers with ``numbers``), or only check the schema."""
    if auto_upgrade:
        return lambda engine: upgrade_engine(engine, numbers=numbers)
    return check_schema


def _prepare(
    engine: Engine,
    step: Callable[[Engine], None],
    tallies: DailyTallies,
    today: dt.date,
    directory: tuple[list[SeatInfo], list[str]],
    spool: Path | None,
    places: Places | None = None,
) -> StoredAdjustments | None:
    """Migrate, copy the directory (seats, PBXs, sites, teams), restore today, load the
    adjustments; ``None`` if the database is not usable."""
    try:
        step(engine)
        sync_directory(engine, *directory)
        if places is not None:
            sync_places(engine, places)
        # Only this instance's PBXs (others may share the database); none named: all of them.
        restored = restore_tallies(engine, tallies, today, directory[1] or None)
        adjustments = load_adjustments(engine, today - dt.timedelta(days=RESTORE_DAYS), spool)
    except StoreError as err:
        log.warning("store_unavailable_at_start", error=str(err))
        return None
    log.info("store_ready", restored_seats=restored, day=today.isoformat())
    return adjustments


def _since(tz: ZoneInfo) -> dt.date:
    return dt.datetime.now(tz).date() - dt.timedelta(days=RESTORE_DAYS)
