"""Retention: delete the rows of local days before a cut-off, in bounded batches.

A row goes when no day from the cut-off on can need it, by the same overlap rules the
readers use (:func:`ctid.store.queries.load_calls`, ``load_internal``, ``completeness``):

* ``calls`` that ended before the cut-off, with their ``call_segments`` (same transaction);
  a call still running at midnight stays, it counts on the kept day;
* ``internal_talk`` ended, ``internal_calls`` placed, ``gaps`` closed, ``violations`` decided
  before it; ``cdrs`` posted before it, unless a kept call has their linkedid;
* ``quota_adjustments`` of days before it (the audit trail lives as long as the days it
  affects), except an entry a kept revocation names and the newest entry, which carries the
  id sequence forward (ids are never handed out twice);
* ``follow_ups`` and ``revenue`` of days before it (a month's revenue total stays while a day
  of its month does);
* ``daily_tallies`` of days before it: a closed day's tallies go with its calls.

``policy_versions`` (what kept rows were judged with), ``seats``, ``pbxs``, ``sites``,
``teams`` and lead lists are never purged.

Each batch is one short transaction of at most ``batch_rows`` rows (calls: that many calls
plus their segments), so a large purge neither holds a lock for long nor loads the rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    delete,
    exists,
    func,
    inspect,
    not_,
    or_,
    select,
    tuple_,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import FromClause

from ctid.errors import InputError, StoreError
from ctid.store.migrate import describe_error
from ctid.store.queries import day_window
from ctid.store.schema import (
    call_segments,
    calls,
    cdrs,
    gaps,
    internal_calls,
    internal_talk,
    metadata,
    quota_adjustments,
    violations,
)

log = structlog.get_logger("ctid.store")

BATCH_ROWS = 5000
BATCH_PAUSE_S = 0.02
"""Between batches, so the daemon's writer on the same SQLite file takes its turn."""
PURGED = (
    "calls",
    "call_segments",
    "internal_talk",
    "internal_calls",
    "cdrs",
    "gaps",
    "violations",
    "quota_adjustments",
    "follow_ups",
    "revenue",
    "daily_tallies",
)
"""In deletion order; a table the database does not have (yet) is left out."""
KEPT = ("policy_versions",)
"""Shown in the summary, never purged."""
_KEYS_PER_STATEMENT = 500
"""Call keys per ``IN (...)``: far below every backend's bound-parameter limit."""

Progress = Callable[[str, int, int], None]
"""``(table, rows deleted so far, rows planned)`` after each batch."""


@dataclass(frozen=True, slots=True)
class Cutoff:
    day: dt.date
    """The first local day kept."""
    at: dt.datetime
    """The UTC instant that day starts."""

    @classmethod
    def of(cls, day: dt.date, tz: ZoneInfo) -> Cutoff:
        return cls(day, day_window(day, tz)[0])


def protected_since(today: dt.date) -> dt.date:
    """The first day period reports of ``today`` read: the month's first day, or the ISO
    week's Monday when the week began in the month before."""
    return min(today.replace(day=1), today - dt.timedelta(days=today.weekday()))


def check_cutoff(day: dt.date, today: dt.date, *, force: bool) -> None:
    """Refuse a cut-off that would delete days the current period reports need."""
    keep_from = protected_since(today)
    if day > keep_from and not force:
        raise InputError(
            f"cut-off {day.isoformat()} would delete days from {keep_from.isoformat()} on, "
            "which this month's and this week's reports need: give an earlier day, or --force"
        )


def retention_cutoff(today: dt.date, retention_days: int) -> dt.date:
    """The daemon's cut-off: ``retention_days`` before today, never inside the current
    month or ISO week."""
    return min(today - dt.timedelta(days=retention_days), protected_since(today))


def doomed(table: Table, cutoff: Cutoff) -> ColumnElement[bool]:
    """The rows of ``table`` that no day from the cut-off on reads."""
    if table is calls:
        return calls.c.ended_at < cutoff.at
    if table is internal_talk:
        return internal_talk.c.ended_at < cutoff.at
    if table is internal_calls:
        return internal_calls.c.placed_at < cutoff.at
    if table is gaps:
        return gaps.c.ended_at <= cutoff.at
    if table is violations:
        return violations.c.at < cutoff.at
    if table is cdrs:
        kept_call = exists().where(
            calls.c.pbx == cdrs.c.pbx,
            calls.c.linkedid == cdrs.c.linkedid,
            or_(calls.c.ended_at >= cutoff.at, calls.c.ended_at.is_(None)),
        )
        return and_(cdrs.c.posted_at < cutoff.at, not_(kept_call))
    if table is quota_adjustments:
        any_entry, revocation = quota_adjustments.alias("any_entry"), quota_adjustments.alias()
        newest = select(func.max(any_entry.c.id)).scalar_subquery()
        named = exists().where(
            revocation.c.revokes == quota_adjustments.c.id, revocation.c.day >= cutoff.day
        )
        return and_(
            quota_adjustments.c.day < cutoff.day,
            quota_adjustments.c.id < newest,
            not_(named),
        )
    if table.name in ("follow_ups", "daily_tallies"):
        return table.c["day"] < cutoff.day
    if table.name == "revenue":
        # A month total (dated its first day) stays while any day of its month does.
        month = cutoff.day.replace(day=1)
        day, span = table.c["day"], table.c["span"]
        return or_(and_(span != "month", day < cutoff.day), and_(span == "month", day < month))
    raise ValueError(f"{table.name} is never purged")


def plan(engine: Engine, cutoff: Cutoff) -> dict[str, int]:
    """Rows per table that a purge at ``cutoff`` would delete (nothing is changed)."""
    segments_of_doomed = call_segments.join(
        calls,
        and_(call_segments.c.pbx == calls.c.pbx, call_segments.c.linkedid == calls.c.linkedid),
    )
    counts: dict[str, int] = {}
    source: FromClause
    with _connected(engine) as connection:
        for name in purged_tables(connection):
            table = metadata.tables[name]
            if table is call_segments:
                source, where = segments_of_doomed, doomed(calls, cutoff)
            else:
                source, where = table, doomed(table, cutoff)
            query = select(func.count()).select_from(source).where(where)
            counts[name] = int(connection.execute(query).scalar_one())
    return counts


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per table: the purged ones and :data:`KEPT`."""
    with _connected(engine) as connection:
        return {
            name: int(
                connection.execute(
                    select(func.count()).select_from(metadata.tables[name])
                ).scalar_one()
            )
            for name in (*purged_tables(connection), *KEPT)
        }


def purged_tables(connection: Connection) -> list[str]:
    """The tables of :data:`PURGED` this database has."""
    present = set(inspect(connection).get_table_names())
    return [name for name in PURGED if name in present and name in metadata.tables]


def purge(
    engine: Engine,
    cutoff: Cutoff,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    pause_s: float = 0.0,
) -> dict[str, int]:
    """Delete what :func:`plan` counts, batch by batch; rows deleted per table (blocking).

    ``stop`` ends the purge after the current batch (what is deleted stays deleted);
    ``pause_s`` between batches lets a writer on the same SQLite file take its turn.
    """
    if batch_rows < 1:
        raise InputError(f"batch size {batch_rows}: must be at least 1")
    planned = plan(engine, cutoff)
    deleted = dict.fromkeys(planned, 0)

    def more(table: str, rows: int) -> bool:
        """After a batch: report it, pause, and tell whether another may follow."""
        if progress is not None:
            progress(table, deleted[table], planned[table])
        if pause_s:
            time.sleep(pause_s)
        return rows == batch_rows and not _stopped(stop)

    if "calls" in planned and not _stopped(stop):
        while True:
            gone_calls, gone_segments = _purge_calls(engine, cutoff, batch_rows)
            deleted["calls"] += gone_calls
            deleted["call_segments"] += gone_segments
            if not more("calls", gone_calls):
                break
    for name in planned:
        if name in ("calls", "call_segments") or _stopped(stop):
            continue
        statement = _batch_delete(metadata.tables[name], cutoff, batch_rows)
        while True:
            with _connected(engine, begin=True) as connection:
                rows = connection.execute(statement).rowcount
            deleted[name] += rows
            if not more(name, rows):
                break
    return deleted


def _purge_calls(engine: Engine, cutoff: Cutoff, batch_rows: int) -> tuple[int, int]:
    """One batch of calls and their segments, in one transaction: (calls, segments)."""
    found = select(calls.c.pbx, calls.c.linkedid).where(doomed(calls, cutoff)).limit(batch_rows)
    gone_calls = gone_segments = 0
    with _connected(engine, begin=True) as connection:
        keys = [tuple(row) for row in connection.execute(found)]
        for chunk in _chunks(keys):
            segment_keys = tuple_(call_segments.c.pbx, call_segments.c.linkedid)
            gone_segments += connection.execute(
                delete(call_segments).where(segment_keys.in_(chunk))
            ).rowcount
            call_keys = tuple_(calls.c.pbx, calls.c.linkedid)
            gone_calls += connection.execute(delete(calls).where(call_keys.in_(chunk))).rowcount
    return gone_calls, gone_segments


def _batch_delete(table: Table, cutoff: Cutoff, batch_rows: int) -> Any:
    """``DELETE ... WHERE key IN (SELECT key ... LIMIT n)``: the database picks the batch."""
    key = list(table.primary_key.columns)
    # correlate(None): the subquery reads the table itself, not the row being deleted.
    chosen = select(*key).where(doomed(table, cutoff)).limit(batch_rows).correlate(None)
    target = key[0] if len(key) == 1 else tuple_(*key)
    return delete(table).where(target.in_(chosen))


@contextlib.contextmanager
def _connected(engine: Engine, *, begin: bool = False) -> Iterator[Connection]:
    """A connection (``begin``: in a transaction); database errors become one line."""
    try:
        with engine.begin() if begin else engine.connect() as connection:
            yield connection
    except SQLAlchemyError as err:
        raise StoreError(f"cannot purge the database: {describe_error(err)}") from err


def _chunks(keys: Sequence[tuple[Any, ...]]) -> list[Sequence[tuple[Any, ...]]]:
    return [keys[i : i + _KEYS_PER_STATEMENT] for i in range(0, len(keys), _KEYS_PER_STATEMENT)]


def _stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


# --- in the daemon ----------------------------------------------------------------------

FIRST_RUN_S = 60.0
"""After start: restoring today's tallies and draining the spool come first."""
EVERY_S = 86_400.0
RETRY_S = 3600.0


async def purge_daily(
    engine: Engine,
    retention_days: int,
    tz: ZoneInfo,
    *,
    clock: Callable[[], float] = time.time,
    first_run_s: float | None = None,
    every_s: float = EVERY_S,
    batch_rows: int = BATCH_ROWS,
) -> None:
    """``[store] retention_days``: purge once a day in a worker thread, log what went."""
    await asyncio.sleep(FIRST_RUN_S if first_run_s is None else first_run_s)
    while True:
        today = dt.datetime.fromtimestamp(clock(), tz).date()
        cutoff = Cutoff.of(retention_cutoff(today, retention_days), tz)
        stop = threading.Event()
        started = time.monotonic()
        try:
            deleted = await asyncio.to_thread(
                purge, engine, cutoff, batch_rows=batch_rows, stop=stop, pause_s=BATCH_PAUSE_S
            )
        except StoreError as err:
            log.warning("store_purge_failed", before=cutoff.day.isoformat(), error=str(err))
            await asyncio.sleep(min(RETRY_S, every_s))
            continue
        except asyncio.CancelledError:
            stop.set()  # the thread ends after its current batch
            raise
        seconds = round(time.monotonic() - started, 3)
        log.info("store_purged", before=cutoff.day.isoformat(), seconds=seconds, **deleted)
        await asyncio.sleep(every_s)
