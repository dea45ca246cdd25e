"""Closing a day: each seat's tallies of a local day that is over, kept in ``daily_tallies``.

A day closes at the next local midnight plus ``[store] close_day_after_minutes``, so calls that
crossed midnight have ended and been counted.  The daemon closes it from its live tallies
(source ``daemon``), handing the rows to the writer like every other row; a day it did not
count whole (started later, or the database was not usable at start) or missed (it was down)
is rebuilt from the stored calls instead (source ``rebuild``).  Rows are upserts keyed
``(seat, day)``: closing a day again replaces its rows with equal ones.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Literal, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from ctid.errors import StoreError
from ctid.store.migrate import describe_error
from ctid.store.queries import day_window, rebuild_day
from ctid.store.rows import StoreRow
from ctid.store.schema import daily_tallies
from ctid.tracker.tallies import DailyTallies, SeatTally

log = structlog.get_logger("ctid.store")
P = ParamSpec("P")
T = TypeVar("T")

Source = Literal["daemon", "rebuild"]
TALLY_FIELDS = tuple(f.name for f in fields(SeatTally))
SECONDS_TOLERANCE = 0.001
"""Stored and rebuilt seconds agree within a millisecond (float sums in another order)."""
CATCH_UP_DAYS = 31
"""At start, days further back than this are not closed any more."""
RETRY_S = 300.0
MAX_SLEEP_S = 3600.0
"""Wake up at least this often while waiting: the wall clock may jump (NTP, suspend)."""


@dataclass(frozen=True, slots=True)
class ClosedSeat:
    tally: SeatTally
    source: str
    closed_at: dt.datetime


def tally_rows(
    day: dt.date, seats: Mapping[str, SeatTally], source: Source, closed_at: float
) -> list[StoreRow]:
    """The ``daily_tallies`` rows of a day (JSON values: they may wait in the spool)."""
    return [
        StoreRow(
            "daily_tallies",
            {
                "seat": seat,
                "day": day.isoformat(),
                **tally.as_dict(),
                "closed_at": closed_at,
                "source": source,
            },
        )
        for seat, tally in sorted(seats.items())
    ]


def close_time(day: dt.date, tz: ZoneInfo, delay_s: float) -> float:
    """Epoch seconds at which ``day`` is closed: its end plus the settle delay."""
    return day_window(day, tz)[1].timestamp() + delay_s


def first_unclosed_day(engine: Engine, today: dt.date) -> dt.date:
    """The day after the last closed one, at most :data:`CATCH_UP_DAYS` back (blocking)."""
    try:
        with engine.connect() as connection:
            found = connection.execute(select(func.max(daily_tallies.c.day))).scalar_one()
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
    oldest = today - dt.timedelta(days=CATCH_UP_DAYS)
    if found is None:
        return oldest
    # SQLite gives MAX() of a date column back as text.
    last = dt.date.fromisoformat(found) if isinstance(found, str) else found
    assert isinstance(last, dt.date)
    return max(last + dt.timedelta(days=1), oldest)


def load_closed_day(engine: Engine, day: dt.date) -> dict[str, ClosedSeat]:
    """The stored tallies of ``day`` per seat; empty when the day was not closed (blocking)."""
    query = select(daily_tallies).where(daily_tallies.c.day == day)
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
    return {
        r.seat: ClosedSeat(
            SeatTally(**{name: getattr(r, name) for name in TALLY_FIELDS}), r.source, r.closed_at
        )
        for r in rows
    }


def replace_day(engine: Engine, day: dt.date, rows: Iterable[StoreRow]) -> None:
    """Make ``rows`` the day's only stored tallies, in one transaction (blocking)."""
    values = [row.values for row in rows]
    try:
        with engine.begin() as connection:
            connection.execute(delete(daily_tallies).where(daily_tallies.c.day == day))
            if values:
                connection.execute(daily_tallies.insert(), values)
    except SQLAlchemyError as err:
        raise StoreError(f"cannot write the database: {describe_error(err)}") from err


def store_rebuilt_day(engine: Engine, day: dt.date, seats: Mapping[str, SeatTally]) -> None:
    replace_day(engine, day, tally_rows(day, seats, "rebuild", time.time()))


def differences(stored: Mapping[str, SeatTally], rebuilt: Mapping[str, SeatTally]) -> list[str]:
    """One line per seat whose stored tallies differ from the rebuilt ones."""
    out: list[str] = []
    for seat in sorted(set(stored) | set(rebuilt)):
        if seat not in rebuilt:
            out.append(f"{seat}: stored, but no stored call or internal talk of the day has it")
            continue
        if seat not in stored:
            out.append(f"{seat}: not stored (rebuilt: {rebuilt[seat].calls} calls)")
            continue
        changed = [
            f"{name} stored {_shown(getattr(stored[seat], name))} "
            f"rebuilt {_shown(getattr(rebuilt[seat], name))}"
            for name in TALLY_FIELDS
            if not _same(getattr(stored[seat], name), getattr(rebuilt[seat], name))
        ]
        if changed:
            out.append(f"{seat}: " + ", ".join(changed))
    return out


def _shown(value: float) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0.0, abs_tol=SECONDS_TOLERANCE)


# --- in the daemon ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayCloser:
    """What the daemon closes days with (its parts, so a test can run it without a daemon)."""

    engine: Engine
    put: Callable[[Iterable[StoreRow]], None]
    """The writer's :meth:`ctid.store.writer.StoreWriter.put`."""
    tallies: DailyTallies
    delay_s: float
    live_from: dt.date | None
    """The first day the live tallies hold whole (today at start, if restored); ``None``:
    every day is rebuilt."""
    pbxs: Collection[str] | None = None
    clock: Callable[[], float] = time.time
    retry_s: float = RETRY_S

    async def run(self) -> None:
        """Close every day since the last closed one, then each day as it settles."""
        today = dt.datetime.fromtimestamp(self.clock(), self.tallies.tz).date()
        day = await self._retrying(first_unclosed_day, self.engine, today)
        while True:
            await self._until(close_time(day, self.tallies.tz, self.delay_s))
            await self.close(day)
            day += dt.timedelta(days=1)

    async def close(self, day: dt.date) -> None:
        """Hand the day's rows to the writer: from the live tallies if they hold it whole."""
        source: Source = "daemon"
        seats = self.tallies.days.get(day)
        if seats is None or self.live_from is None or day < self.live_from:
            source = "rebuild"
            tz, effective = self.tallies.tz, self.tallies.effective_seconds
            seats = await self._retrying(rebuild_day, self.engine, day, tz, effective, self.pbxs)
        rows = tally_rows(day, seats, source, self.clock())
        self.put(rows)
        if rows:
            log.info("day_closed", day=day.isoformat(), seats=len(rows), source=source)

    async def _retrying(self, work: Callable[P, T], *args: P.args, **kw: P.kwargs) -> T:
        """``work`` in a worker thread, again every ``retry_s`` while the database fails."""
        while True:
            try:
                return await asyncio.to_thread(work, *args, **kw)
            except StoreError as err:
                log.warning("day_close_deferred", error=str(err), retry_s=self.retry_s)
                await asyncio.sleep(self.retry_s)

    async def _until(self, instant: float) -> None:
        # Waiting on the wall clock, which no event signals; re-read after each nap.
        while (left := instant - self.clock()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(left, MAX_SLEEP_S))
