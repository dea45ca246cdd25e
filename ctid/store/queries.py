"""Reading the store back: calls as tracker objects, tallies rebuilt per local day, CDRs.

Tallies are rebuilt by feeding the stored calls through :class:`DailyTallies` — the same code
the daemon counts with — so a rebuilt day equals the live one by construction; the stored
talk/hold intervals let it split a call at local midnight exactly as the daemon did.
Blocking: call from a worker thread in async code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, Row, and_, or_, select
from sqlalchemy.exc import SQLAlchemyError

from ctid.errors import StoreError
from ctid.store.migrate import describe_error
from ctid.store.reconcile import CdrRecord
from ctid.store.schema import call_segments, calls, cdrs, gaps, internal_calls, internal_talk
from ctid.tracker.model import (
    Call,
    Direction,
    Effect,
    InternalCallPlaced,
    InternalTalk,
    Outcome,
    Segment,
)
from ctid.tracker.tallies import DEFAULT_EFFECTIVE_SECONDS, DailyTallies, SeatTally

_IN_CHUNK = 500
"""Keys per ``IN (...)``: far below every backend's bound-parameter limit."""


def day_window(day: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants a local calendar day runs between (23 or 25 h across DST changes)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def load_calls(
    connection: Connection,
    start: dt.datetime,
    end: dt.datetime,
    *,
    pbx: str | None = None,
) -> list[Call]:
    """Calls that overlap ``[start, end)``, with their segments, oldest first."""
    overlap = and_(
        calls.c.started_at < end, or_(calls.c.ended_at >= start, calls.c.ended_at.is_(None))
    )
    if pbx is not None:
        overlap = and_(overlap, calls.c.pbx == pbx)
    call_rows = connection.execute(select(calls).where(overlap).order_by(calls.c.started_at))
    found = {(r.pbx, r.linkedid): call_from_row(r) for r in call_rows}
    joined = select(call_segments).join(
        calls,
        and_(call_segments.c.pbx == calls.c.pbx, call_segments.c.linkedid == calls.c.linkedid),
    )
    for row in connection.execute(joined.where(overlap)):
        _attach_segment(found, row)
    return list(found.values())


def load_calls_by_id(connection: Connection, pbx: str, linkedids: Iterable[str]) -> list[Call]:
    found: dict[tuple[str, str], Call] = {}
    for chunk in _chunks(sorted(set(linkedids))):
        where = and_(calls.c.pbx == pbx, calls.c.linkedid.in_(chunk))
        for row in connection.execute(select(calls).where(where)):
            found[(row.pbx, row.linkedid)] = call_from_row(row)
        seg_where = and_(call_segments.c.pbx == pbx, call_segments.c.linkedid.in_(chunk))
        for row in connection.execute(select(call_segments).where(seg_where)):
            _attach_segment(found, row)
    return sorted(found.values(), key=lambda c: c.started_at)


def call_from_row(row: Row[Any]) -> Call:
    """A stored call as the tracker's :class:`Call` (dial times are not stored: use the
    ``ring_seconds`` column, not ``Call.ring_seconds``, for stored calls). Its ``remote`` is
    the masked number; :func:`call_numbers` has the hash and the sealed copy."""
    return Call(
        pbx=row.pbx,
        linkedid=row.linkedid,
        direction=Direction(row.direction),
        started_at=row.started_at.timestamp(),
        remote=row.remote_masked,  # the store keeps no clear number (number_protect)
        placed_by=row.placed_by,
        answered_at=_epoch(row.answered_at),
        ended_at=_epoch(row.ended_at),
        cause=row.cause,
        fax=row.kind == "fax",
        interrupted=row.interrupted,
        outcome=Outcome(row.outcome) if row.outcome else None,
    )


def call_numbers(
    connection: Connection, start: dt.datetime, end: dt.datetime
) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    """``(pbx, linkedid)`` → (number hash, sealed number) of the calls started in
    ``[start, end)`` that had a number."""
    started = and_(calls.c.started_at >= start, calls.c.started_at < end)
    columns = (calls.c.pbx, calls.c.linkedid, calls.c.remote_hash, calls.c.remote_sealed)
    query = select(*columns).where(started, calls.c.remote_hash.is_not(None))
    rows = connection.execute(query)
    return {(r.pbx, r.linkedid): (r.remote_hash, r.remote_sealed) for r in rows}


def _attach_segment(found: dict[tuple[str, str], Call], row: Row[Any]) -> None:
    call = found.get((row.pbx, row.linkedid))
    if call is None:
        return
    segment = Segment(
        row.seat,
        row.seat_channel,
        row.ext_channel,
        talk_seconds=row.talk_seconds,
        hold_seconds=row.hold_seconds,
        talk_intervals=tuple((a, b) for a, b in row.talk_intervals),
        hold_intervals=tuple((a, b) for a, b in row.hold_intervals),
    )
    call.segments[(row.seat_channel, row.ext_channel)] = segment


def load_internal(connection: Connection, start: dt.datetime, end: dt.datetime) -> list[Effect]:
    """Seat-to-seat talk overlapping, and internal calls placed in, ``[start, end)``."""
    talk = select(internal_talk).where(
        internal_talk.c.started_at < end, internal_talk.c.ended_at >= start
    )
    placed = select(internal_calls).where(
        internal_calls.c.placed_at >= start, internal_calls.c.placed_at < end
    )
    effects: list[Effect] = [
        InternalTalk(r.pbx, r.seat, r.started_at.timestamp(), r.ended_at.timestamp())
        for r in connection.execute(talk)
    ]
    effects += [
        InternalCallPlaced(r.pbx, r.placed_at.timestamp(), r.seat, r.target_seat)
        for r in connection.execute(placed)
    ]
    return effects


def rebuild_day(
    engine: Engine,
    day: dt.date,
    tz: ZoneInfo,
    effective_seconds: float = DEFAULT_EFFECTIVE_SECONDS,
    pbxs: Collection[str] | None = None,
) -> dict[str, SeatTally]:
    """Per-seat tallies of one local day, from the stored calls and internal talk.

    ``pbxs`` keeps only those PBXs' calls: instances sharing one database each restore their own.
    """
    start, end = day_window(day, tz)
    try:
        with engine.connect() as connection:
            found = load_calls(connection, start, end)
            internal = load_internal(connection, start, end)
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
    tallies = DailyTallies(tz, effective_seconds)
    for call in found:
        if pbxs is None or call.pbx in pbxs:
            tallies.add_call(call)
    for effect in internal:
        if pbxs is None or getattr(effect, "pbx", None) in pbxs:
            tallies.apply(effect)
    return tallies.days.get(day, {})


def rebuild_days(
    engine: Engine,
    first: dt.date,
    last: dt.date,
    tz: ZoneInfo,
    effective_seconds: float = DEFAULT_EFFECTIVE_SECONDS,
) -> dict[str, SeatTally]:
    """Per-seat totals over ``first..last`` (inclusive), one day at a time to bound memory."""
    totals: dict[str, SeatTally] = {}
    day = first
    while day <= last:
        for seat, tally in rebuild_day(engine, day, tz, effective_seconds).items():
            totals.setdefault(seat, SeatTally()).add(tally)
        day += dt.timedelta(days=1)
    return totals


def restore_tallies(
    engine: Engine, tallies: DailyTallies, day: dt.date, pbxs: Collection[str] | None = None
) -> int:
    """Put a stored day back into the daemon's tallies (on start); returns seats restored."""
    tallies.days[day] = rebuild_day(engine, day, tallies.tz, tallies.effective_seconds, pbxs)
    return len(tallies.days[day])


def load_cdrs(connection: Connection, pbx: str, linkedids: Iterable[str]) -> list[CdrRecord]:
    out: list[CdrRecord] = []
    for chunk in _chunks(sorted(set(linkedids))):
        where = and_(cdrs.c.pbx == pbx, cdrs.c.linkedid.in_(chunk))
        out += [cdr_from_row(r) for r in connection.execute(select(cdrs).where(where))]
    return out


def load_cdrs_between(
    connection: Connection, start: dt.datetime, end: dt.datetime
) -> list[CdrRecord]:
    where = and_(cdrs.c.posted_at >= start, cdrs.c.posted_at < end)
    return [cdr_from_row(r) for r in connection.execute(select(cdrs).where(where))]


def cdr_from_row(row: Row[Any]) -> CdrRecord:
    return CdrRecord(
        pbx=row.pbx,
        linkedid=row.linkedid,
        uniqueid=row.uniqueid,
        channel=row.channel,
        dest_channel=row.dest_channel,
        disposition=row.disposition,
        billsec=row.billsec,
        duration=row.duration,
        posted_at=row.posted_at.timestamp(),
        answered_at=_epoch(row.answered_at),
    )


def completeness(connection: Connection, start: dt.datetime, end: dt.datetime) -> dict[str, float]:
    """Per PBX with calls or gaps in ``[start, end)``: the share of it ctid was connected.

    1.0 means no AMI gap; an open gap (ctid still disconnected) runs to ``end``.
    """
    where = and_(gaps.c.started_at < end, or_(gaps.c.ended_at > start, gaps.c.ended_at.is_(None)))
    lost: dict[str, list[tuple[float, float]]] = {}
    for row in connection.execute(select(gaps).where(where)):
        stop = end if row.ended_at is None else min(row.ended_at, end)
        lost.setdefault(row.pbx, []).append(
            (max(row.started_at, start).timestamp(), stop.timestamp())
        )
    active = select(calls.c.pbx).where(calls.c.started_at >= start, calls.c.started_at < end)
    names = set(lost) | set(connection.execute(active.distinct()).scalars())
    span = (end - start).total_seconds()
    return {pbx: 1.0 - _merged_length(lost.get(pbx, [])) / span for pbx in sorted(names)}


def _merged_length(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for a, b in sorted(intervals):
        a = max(a, reach)
        if b > a:
            total += b - a
            reach = b
    return total


def _epoch(value: dt.datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for offset in range(0, len(items), _IN_CHUNK):
        yield items[offset : offset + _IN_CHUNK]
