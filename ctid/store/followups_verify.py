"""Checking follow-up claims against the calls ctid measured.

A claim is **verified** when, on the claim's local day, the seat talked on a voice call with
that number (answered, the seat's own talk on it — its segments summed — at least the
effective-call threshold): the rule the daily tallies count effective calls by. Otherwise its
reason is, in this order: ``call too short`` (the seat talked with the number, not long
enough), ``not answered`` (the seat dialled or rang for it, nobody talked), ``other seat's
call`` (only other seats had calls with it), ``no call``.

Calls are stored with the keyed hash of their number (:mod:`ctid.store.number_protect`),
made with the key and region claims are stored with, so claims and calls are matched by hash
and checking needs no key. Blocking: call from a worker thread in async code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, select

from ctid.store.queries import day_window
from ctid.store.schema import call_segments, calls, follow_ups

NO_CALL = "no call"
TOO_SHORT = "call too short"
NOT_ANSWERED = "not answered"
OTHER_SEAT = "other seat's call"


@dataclass(frozen=True, slots=True)
class StoredClaim:
    seat: str
    at: dt.datetime
    number_hash: str
    number_masked: str
    klass: str | None
    note: str


@dataclass(slots=True)
class CallFacts:
    """What verification needs of one stored call."""

    voice: bool
    answered: bool
    seats: set[str] = field(default_factory=set)
    """Every seat on the call: its dialler, its main seat, each seat with a segment."""
    talk: dict[str, float] = field(default_factory=dict)
    """Talk seconds per seat, its segments summed."""


@dataclass(frozen=True, slots=True)
class Verdict:
    claim: StoredClaim
    reason: str | None
    """``None``: verified."""

    @property
    def verified(self) -> bool:
        return self.reason is None


def judge(
    claim: StoredClaim, by_number: Mapping[str, list[CallFacts]], threshold: float
) -> Verdict:
    """The verdict on one claim, given the day's calls grouped by number hash (pure)."""
    found = by_number.get(claim.number_hash, [])
    own = [c for c in found if claim.seat in c.seats]
    if any(c.voice and c.answered and c.talk.get(claim.seat, 0.0) >= threshold for c in own):
        return Verdict(claim, None)
    if any(c.talk.get(claim.seat, 0.0) > 0 for c in own):
        return Verdict(claim, TOO_SHORT)
    if own:
        return Verdict(claim, NOT_ANSWERED)
    return Verdict(claim, OTHER_SEAT if found else NO_CALL)


def load_claims(connection: Connection, day: dt.date) -> list[StoredClaim]:
    where = follow_ups.c.day == day
    query = select(follow_ups).where(where).order_by(follow_ups.c.seat, follow_ups.c.at)
    return [
        StoredClaim(r.seat, r.at, r.number_hash, r.number_masked, r._mapping["class"], r.note)
        for r in connection.execute(query)
    ]


def day_calls(connection: Connection, day: dt.date, tz: ZoneInfo) -> dict[str, list[CallFacts]]:
    """The calls that started on the local ``day``, grouped by the keyed hash of the number."""
    start, end = day_window(day, tz)
    started = and_(calls.c.started_at >= start, calls.c.started_at < end)
    query = select(
        calls.c.pbx, calls.c.linkedid, calls.c.remote_hash, calls.c.kind, calls.c.seat,
        calls.c.placed_by, calls.c.answered_at,
    ).where(started)  # fmt: skip
    facts: dict[tuple[str, str], tuple[str | None, CallFacts]] = {}
    for row in connection.execute(query):
        call = CallFacts(voice=row.kind == "voice", answered=row.answered_at is not None)
        call.seats.update(s for s in (row.seat, row.placed_by) if s)
        facts[(row.pbx, row.linkedid)] = (row.remote_hash, call)
    segments = select(
        call_segments.c.pbx, call_segments.c.linkedid, call_segments.c.seat,
        call_segments.c.talk_seconds,
    ).join(
        calls,
        and_(call_segments.c.pbx == calls.c.pbx, call_segments.c.linkedid == calls.c.linkedid),
    )  # fmt: skip
    for segment in connection.execute(segments.where(started)):
        _, call = facts[(segment.pbx, segment.linkedid)]
        call.seats.add(segment.seat)
        call.talk[segment.seat] = call.talk.get(segment.seat, 0.0) + segment.talk_seconds
    return _by_number(facts.values())


def _by_number(found: Iterable[tuple[str | None, CallFacts]]) -> dict[str, list[CallFacts]]:
    out: dict[str, list[CallFacts]] = {}
    for digest, call in found:
        if digest:  # a call with no number (an odd trunk) matches no claim
            out.setdefault(digest, []).append(call)
    return out


def verify_day(
    connection: Connection, day: dt.date, tz: ZoneInfo, threshold: float
) -> list[Verdict]:
    """Every claim of the local ``day``, judged; by seat, then time."""
    claims = load_claims(connection, day)
    if not claims:
        return []
    by_number = day_calls(connection, day, tz)
    return [judge(claim, by_number, threshold) for claim in claims]
