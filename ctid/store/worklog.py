"""A seat's work log of one local day: its customer calls in time order and its follow-ups.

A seat's calls are those it placed or talked on (a segment) that started on the day — the day
the tallies count a call on. Per call: its local start, direction, the number masked, outcome,
the seat's own talk (its segments summed, hold excluded) and whether that made it an effective
call for the seat (voice, talk at least the threshold: the tallies' rule). Customers reached are
the distinct numbers (by keyed hash) the seat talked with. Follow-ups are the day's claims with
the verdict of :func:`ctid.store.followups_verify.verify_day`. Numbers are shown as the store
keeps them, masked; only with the encryption key (``--reveal``) are calls' numbers decrypted.
Blocking: call from a worker thread in async code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ctid.errors import StoreError
from ctid.store.directory import SeatInfo
from ctid.store.followups_verify import Verdict
from ctid.store.migrate import describe_error
from ctid.store.number_seal import Sealer
from ctid.store.period_followups import period_verdicts
from ctid.store.queries import call_numbers, day_window, load_calls
from ctid.tracker.model import Call

CallKey = tuple[str, str]
"""``(pbx, linkedid)``."""


@dataclass(frozen=True, slots=True)
class LoggedCall:
    at: dt.datetime
    """Local start."""
    direction: str
    number: str
    """Masked (decrypted only with ``--reveal``)."""
    outcome: str
    talk_seconds: float
    effective: bool


@dataclass(frozen=True, slots=True)
class SeatLog:
    seat: str
    info: SeatInfo
    calls: tuple[LoggedCall, ...]
    customers_reached: int
    follow_ups: tuple[Verdict, ...]

    @property
    def effective(self) -> int:
        return sum(1 for call in self.calls if call.effective)

    @property
    def verified(self) -> int:
        return sum(1 for verdict in self.follow_ups if verdict.verified)


@dataclass(frozen=True, slots=True)
class WorkLog:
    day: dt.date
    timezone: str
    threshold: float
    seats: list[SeatLog]


def seats_of(call: Call) -> set[str]:
    found = {segment.seat for segment in call.segments.values()}
    return found | ({call.placed_by} if call.placed_by else set())


def _talk(call: Call, seat: str) -> float:
    return sum(s.talk_seconds for s in call.segments.values() if s.seat == seat)


@dataclass(frozen=True, slots=True)
class DayNumbers:
    """What the work log knows of the day's call numbers besides the masked form."""

    hashes: Mapping[CallKey, str]
    """Keyed hash per call with a number: tells customers apart."""
    revealed: Mapping[CallKey, str]
    """Decrypted numbers (``--reveal``); empty otherwise."""


def seat_log(
    seat: str,
    info: SeatInfo,
    found: Iterable[Call],
    verdicts: Sequence[Verdict],
    threshold: float,
    tz: ZoneInfo,
    numbers: DayNumbers,
) -> SeatLog:
    """One seat's log from the day's calls (any order) and claims (pure)."""
    own = sorted((c for c in found if seat in seats_of(c)), key=lambda c: c.started_at)
    logged, reached = [], set()
    for call in own:
        talk, key = _talk(call, seat), (call.pbx, call.linkedid)
        if talk > 0 and key in numbers.hashes:
            reached.add(numbers.hashes[key])
        logged.append(
            LoggedCall(
                dt.datetime.fromtimestamp(call.started_at, tz),
                str(call.direction),
                numbers.revealed.get(key, call.remote),  # stored calls' remote is masked
                str(call.outcome) if call.outcome else "",
                talk,
                not call.fax and talk >= threshold,
            )
        )
    claims = tuple(v for v in verdicts if v.claim.seat == seat)
    return SeatLog(seat, info, tuple(logged), len(reached), claims)


def build_worklog(
    day: dt.date,
    tz: ZoneInfo,
    threshold: float,
    found: Sequence[Call],
    verdicts: Sequence[Verdict],
    directory: Mapping[str, SeatInfo],
    numbers: DayNumbers,
    seat: str | None = None,
) -> WorkLog:
    """Every seat with a call or a claim that day (or only ``seat``), by seat id (pure)."""
    seats = {s for call in found for s in seats_of(call)} | {v.claim.seat for v in verdicts}
    chosen = sorted(seats) if seat is None else [seat]
    logs = [
        seat_log(s, directory.get(s, SeatInfo(s)), found, verdicts, threshold, tz, numbers)
        for s in chosen
    ]
    return WorkLog(day, tz.key, threshold, logs)


def read_day(
    engine: Engine,
    day: dt.date,
    tz: ZoneInfo,
    threshold: float,
    reveal: Sealer | None = None,
) -> tuple[list[Call], list[Verdict], DayNumbers]:
    """The customer calls that started on the local ``day``, its claims judged, and the
    calls' number hashes (with ``reveal``, their numbers decrypted too)."""
    start, end = day_window(day, tz)
    try:
        with engine.connect() as connection:
            found = [
                call
                for call in load_calls(connection, start, end)
                if start.timestamp() <= call.started_at < end.timestamp()
            ]
            verdicts = period_verdicts(connection, [day], tz, threshold).get(day, [])
            stored = call_numbers(connection, start, end)
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
    hashes = {key: digest for key, (digest, _) in stored.items() if digest is not None}
    revealed = {}
    if reveal is not None:
        revealed = {key: reveal.open(sealed) for key, (_, sealed) in stored.items() if sealed}
    return found, verdicts, DayNumbers(hashes, revealed)
