"""Backfill: calls that ended inside an AMI gap, from the PBX's ``Master.csv``, into the store.

Blocking (file and database): the daemon runs :func:`backfill` in a worker thread.

1. The gaps of the PBX in ``[since, until)`` (given, or from the ``gaps`` table).
2. The CSV rows that ended in the window, their wall clock turned into UTC with the PBX's
   offset — learnt from the rows the store also holds as ``Cdr`` events, else the site's time
   zone.
3. Their external calls (:mod:`ctid.store.backfill_calls`), each looked up among the stored
   calls (by linkedid; by channels and time when the file has no linkedid column).
4. Those ctid does not have and that ended inside a gap are inserted with
   ``backfilled = true``, *if absent*: a tracked call is never replaced, and running the
   backfill again adds nothing.  A tracked call written later does replace a backfilled one.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from ctid.errors import StoreError
from ctid.store.backfill_calls import CsvCall, KnownPairs, external_calls, known_linkedid, to_call
from ctid.store.master_csv import CsvCdr, read_rows
from ctid.store.migrate import describe_error
from ctid.store.number_protect import NumberKeys, NumberProtector
from ctid.store.rows import ZONE_STEP_S, call_rows
from ctid.store.schema import call_segments, calls, cdrs, gaps
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Call

ZONE_SLACK_S = 15 * 3600.0
"""Wall clocks are at most 14 h from UTC: the offset is learnt from rows this near."""
LONGEST_CALL_S = 6 * 3600.0
"""Stored calls are looked up by start time (indexed): this far before the window."""
_OFFSET_SAMPLE = 200
"""Rows (with a uniqueid) read to learn the PBX's offset from."""


@dataclass
class BackfillReport:
    pbx: str
    since: float
    until: float
    gaps: list[tuple[float, float]]
    offset: float = 0.0
    offset_source: str = "timezone"
    """``cdrs``: learnt from rows the store holds as Cdr events; ``timezone``: the site's."""
    external_calls: int = 0
    """Calls with a seat↔trunk CDR that Master.csv shows ending in the window."""
    tracked: int = 0
    """... of which ctid measured from the event stream."""
    backfilled_before: int = 0
    added: list[Call] = field(default_factory=list)
    missing_outside_gaps: int = 0
    """Not in the store, but not inside a recorded gap either (ctid was not running?)."""

    @property
    def completeness(self) -> float | None:
        """Share of the PBX's external calls ctid measured itself; ``None`` with none."""
        return self.tracked / self.external_calls if self.external_calls else None


def backfill(
    engine: Engine,
    *,
    pbx: str,
    csv_path: Path,
    directory: EndpointDirectory,
    since: float,
    until: float,
    tz: ZoneInfo,
    numbers: NumberKeys,
    gap_windows: Sequence[tuple[float, float]] | None = None,
    also_known: Collection[str] = (),
) -> BackfillReport:
    """Insert the calls Master.csv shows ending inside the PBX's gaps that the store lacks.

    ``numbers``: what the added calls' numbers are stored with (as the writer does).
    ``also_known``: linkedids of calls the daemon has ended but may not have stored yet.
    """
    try:
        with engine.connect() as connection:
            if gap_windows is None:
                gap_windows = load_gaps(connection, pbx, since, until)
            report = BackfillReport(pbx, since, until, list(gap_windows))
            # Two passes, so only the window's rows are held: a sample to learn the offset
            # from, then the rows the offset puts in the window.
            sample = read_rows(
                csv_path,
                since - ZONE_SLACK_S,
                until + ZONE_SLACK_S,
                keep=lambda row: bool(row.uniqueid),
                limit=_OFFSET_SAMPLE,
            )
            report.offset, report.offset_source = _offset(connection, pbx, sample, tz, since)
            rows = read_rows(csv_path, since + report.offset, until + report.offset)
            in_window = [r for r in rows if since <= r.end - report.offset < until]
            found = external_calls(in_window, directory)
            stored = stored_calls(connection, pbx, since, until)
            pairs = stored_pairs(connection, pbx, since, until) if _lacks_linkedid(rows) else {}
        candidates = _classify(report, found, stored, set(also_known), pairs, directory)
        added = insert_absent(engine, candidates, numbers.protector())
    except SQLAlchemyError as err:
        raise StoreError(f"database: {describe_error(err)}") from err
    report.added = [c for c in candidates if c.linkedid in added]
    return report


def _classify(
    report: BackfillReport,
    found: Sequence[CsvCall],
    stored: dict[str, bool],
    also_known: set[str],
    pairs: KnownPairs,
    directory: EndpointDirectory,
) -> list[Call]:
    """Count each external call as tracked / backfilled before / missing; the calls to add."""
    candidates: list[Call] = []
    known_ids = set(stored) | also_known
    for csv_call in found:
        report.external_calls += 1
        linkedid = known_linkedid(csv_call, report.offset, known_ids, pairs)
        if linkedid is not None:
            if stored.get(linkedid, False):
                report.backfilled_before += 1
            else:
                report.tracked += 1
        elif _inside(csv_call.end - report.offset, report.gaps):
            candidates.append(to_call(report.pbx, csv_call, directory, report.offset))
        else:
            report.missing_outside_gaps += 1
    return candidates


def _inside(end: float, windows: Sequence[tuple[float, float]]) -> bool:
    # The row's end is truncated to the second: the call really ended in [end, end + 1).
    return any(start - 1 < end <= stop for start, stop in windows)


def load_gaps(
    connection: Connection, pbx: str, since: float, until: float
) -> list[tuple[float, float]]:
    """The PBX's gaps overlapping ``[since, until)``; one still open runs to ``until``."""
    start, end = _instant(since), _instant(until)
    where = and_(
        gaps.c.pbx == pbx,
        gaps.c.started_at < end,
        or_(gaps.c.ended_at > start, gaps.c.ended_at.is_(None)),
    )
    return [
        (r.started_at.timestamp(), until if r.ended_at is None else r.ended_at.timestamp())
        for r in connection.execute(select(gaps).where(where).order_by(gaps.c.started_at))
    ]


def stored_calls(connection: Connection, pbx: str, since: float, until: float) -> dict[str, bool]:
    """linkedid → backfilled, for the PBX's calls that may have ended in the window."""
    where = and_(
        calls.c.pbx == pbx,
        calls.c.started_at >= _instant(since - LONGEST_CALL_S),
        calls.c.started_at < _instant(until),
    )
    query = select(calls.c.linkedid, calls.c.backfilled).where(where)
    return {r.linkedid: bool(r.backfilled) for r in connection.execute(query)}


def stored_pairs(connection: Connection, pbx: str, since: float, until: float) -> KnownPairs:
    """Stored segments by their two channels, for matching rows without a linkedid."""
    where = and_(
        call_segments.c.pbx == pbx,
        call_segments.c.ended_at >= _instant(since - 60),
        call_segments.c.ended_at < _instant(until + 60),
    )
    columns = (call_segments.c.seat_channel, call_segments.c.ext_channel)
    query = select(*columns, call_segments.c.ended_at, call_segments.c.linkedid).where(where)
    out: dict[frozenset[str], list[tuple[float, str]]] = {}
    for row in connection.execute(query):
        pair = frozenset((row.seat_channel, row.ext_channel))
        out.setdefault(pair, []).append((row.ended_at.timestamp(), row.linkedid))
    return out


def insert_absent(engine: Engine, found: Sequence[Call], numbers: NumberProtector) -> set[str]:
    """Insert each call (``backfilled``) with its segments unless its key is stored; the
    linkedids inserted."""
    inserted: set[str] = set()
    with engine.begin() as connection:
        dialect = connection.dialect.name
        for call in found:
            call_row, *segment_rows = call_rows(call, backfilled=True)
            values = numbers.call_values(call_row.values)
            statement = _insert_if_absent(dialect, "calls").values(values)
            if connection.execute(statement.returning(calls.c.linkedid)).first() is None:
                continue  # stored meanwhile: the tracked call wins
            inserted.add(call.linkedid)
            for row in segment_rows:
                connection.execute(_insert_if_absent(dialect, row.table).values(row.values))
    return inserted


def _insert_if_absent(dialect: str, table_name: str) -> Insert:
    table = {"calls": calls, "call_segments": call_segments}[table_name]
    keys = [column.name for column in table.primary_key]
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
    raise StoreError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")


def _offset(
    connection: Connection, pbx: str, rows: Sequence[CsvCdr], tz: ZoneInfo, since: float
) -> tuple[float, str]:
    """Seconds the PBX's wall clock is ahead of UTC: from rows stored as Cdr events too (the
    same CDR, its ``ended_at`` an instant), else the site's time zone."""
    uniqueids = sorted({r.uniqueid for r in rows if r.uniqueid})
    if uniqueids:
        where = and_(
            cdrs.c.pbx == pbx, cdrs.c.uniqueid.in_(uniqueids), cdrs.c.ended_at.is_not(None)
        )
        ended: dict[str, list[float]] = {}
        for r in connection.execute(select(cdrs.c.uniqueid, cdrs.c.ended_at).where(where)):
            ended.setdefault(r.uniqueid, []).append(r.ended_at.timestamp())
        votes = Counter(
            round((row.end - instant) / ZONE_STEP_S) * ZONE_STEP_S
            for row in rows
            for instant in ended.get(row.uniqueid, ())
        )
        if votes:
            return float(votes.most_common(1)[0][0]), "cdrs"
    local = dt.datetime.fromtimestamp(since, tz).utcoffset()
    return (local.total_seconds() if local else 0.0), "timezone"


def _lacks_linkedid(rows: Sequence[CsvCdr]) -> bool:
    return any(not r.linkedid for r in rows)


def _instant(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)
