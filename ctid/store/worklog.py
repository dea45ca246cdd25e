"""A seat's work log of one local day: its customer calls in time order and its follow-ups.

A seat's calls are those it placed or talked on (a segment) that started on the day — the day
the tallies count a call on. Per call: its local start, direction, the number masked, outcome,
the seat's own talk (its segments summed, hold excluded) and whether that made it an effective
call for the seat (voice, talk at least the threshold: the tallies' rule). Customers reached are
the distinct numbers the seat talked with. Follow-ups are the day's claims with the verdict of
:func:`ctid.store.followups_verify.verify_day`. Numbers are masked here, before anything is
shown. Blocking: call from a worker thread in async code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ctid.errors import StoreError
from ctid.privacy import mask_number
from ctid.store.directory import SeatInfo
from ctid.store.followups_verify import Verdict
from ctid.store.migrate import describe_error
from ctid.store.number_key import NumberHasher
from ctid.store.period_followups import period_verdicts
from ctid.store.queries import day_window, load_calls
from ctid.tracker.model import Call


@dataclass(frozen=True, slots=True)
class LoggedCall:
    at: dt.datetime
    """Local start."""
    direction: str
    number: str
    """Masked."""
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


def seat_log(
    seat: str,
    info: SeatInfo,
    found: Iterable[Call],
    verdicts: Sequence[Verdict],
    threshold: float,
    tz: ZoneInfo,
) -> SeatLog:
    """One seat's log from the day's calls (any order) and claims (pure)."""
    own = sorted((c for c in found if seat in seats_of(c)), key=lambda c: c.started_at)
    logged, reached = [], set()
    for call in own:
        talk = _talk(call, seat)
        if talk > 0 and call.remote:
            reached.add(call.remote)
        logged.append(
            LoggedCall(
                dt.datetime.fromtimestamp(call.started_at, tz),
                str(call.direction),
                mask_number(call.remote) if call.remote else "",
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
    seat: str | None = None,
) -> WorkLog:
    """Every seat with a call or a claim that day (or only ``seat``), by seat id (pure)."""
    seats = {s for call in found for s in seats_of(call)} | {v.claim.seat for v in verdicts}
    chosen = sorted(seats) if seat is None else [seat]
    logs = [
        seat_log(s, directory.get(s, SeatInfo(s)), found, verdicts, threshold, tz) for s in chosen
    ]
    return WorkLog(day, tz.key, threshold, logs)


def read_day(
    engine: Engine,
    day: dt.date,
    tz: ZoneInfo,
    hasher: Callable[[], NumberHasher],
    threshold: float,
) -> tuple[list[Call], list[Verdict]]:
    """The customer calls that started on the local ``day``, and its claims judged."""
    start, end = day_window(day, tz)
    try:
        with engine.connect() as connection:
            found = [
                call
                for call in load_calls(connection, start, end)
                if start.timestamp() <= call.started_at < end.timestamp()
            ]
            verdicts = period_verdicts(connection, [day], tz, hasher, threshold).get(day, [])
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
    return found, verdicts
