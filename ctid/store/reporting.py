"""``ctid report daily|weekly|dekad|monthly``: per-seat results from the store, as a leaderboard.

A period is a day, an ISO week, a dekad (旬: days 1–10, 11–20, 21–end of a month) or a month,
counted up to and including the report date, so a month-to-date report owes nothing for days
still to come. Human seats are ranked by talk time, then effective calls (ties share a rank:
1, 2, 2, 4); robot seats are ranked apart. With a quota policy each row carries the seat's
:class:`~ctid.policy.period.SeatPeriod` (targets, attainment, fines) and the report has team
and centre roll-ups of the human seats.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from ctid.policy.period import SeatPeriod, Totals
from ctid.store.directory import SeatInfo
from ctid.tracker.tallies import SeatTally

PeriodKind = Literal["daily", "weekly", "dekad", "monthly"]


@dataclass(frozen=True, slots=True)
class Period:
    kind: PeriodKind
    first: dt.date
    last: dt.date
    through: dt.date
    """The report date: the period is counted from ``first`` up to and including it."""

    def days(self) -> Iterator[dt.date]:
        """The days counted: ``first`` through ``through``."""
        day = self.first
        while day <= self.through:
            yield day
            day += dt.timedelta(days=1)


def period_for(kind: PeriodKind, day: dt.date) -> Period:
    """The day itself, its ISO week (Monday–Sunday), its dekad or its calendar month."""
    if kind == "daily":
        return Period(kind, day, day, day)
    if kind == "weekly":
        monday = day - dt.timedelta(days=day.weekday())
        return Period(kind, monday, monday + dt.timedelta(days=6), day)
    month_end = _month_end(day)
    if kind == "dekad":
        start = min((day.day - 1) // 10, 2) * 10 + 1  # 1, 11 or 21: the third runs to month end
        last = month_end if start == 21 else day.replace(day=start + 9)
        return Period(kind, day.replace(day=start), last, day)
    return Period(kind, day.replace(day=1), month_end, day)


def _month_end(day: dt.date) -> dt.date:
    following = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return following - dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ReportRow:
    rank: int
    seat: str
    name: str
    team: str
    kind: str
    calls: int
    answered: int
    effective: int
    talk_seconds: float
    hold_seconds: float
    faxes: int
    dials: int
    quota: SeatPeriod | None
    """Targets, attainment and fines, when a policy is given."""

    @property
    def talk_minutes(self) -> float:
        return self.talk_seconds / 60


@dataclass(frozen=True, slots=True)
class QuotaSummary:
    policy_version: str
    currency: str
    teams: list[Totals]
    centre: Totals


@dataclass(frozen=True, slots=True)
class PeriodReport:
    period: Period
    timezone: str
    team: str | None
    completeness: Mapping[str, float]
    seats: list[ReportRow]
    """Human seats, ranked."""
    robots: list[ReportRow]
    """Robot seats, ranked among themselves and left out of the roll-ups."""
    quotas: QuotaSummary | None
    """``None`` without a policy."""


def build_rows(
    totals: Mapping[str, SeatTally],
    seats: Mapping[str, SeatInfo],
    *,
    team: str | None = None,
    quotas: Mapping[str, SeatPeriod] | None = None,
) -> tuple[list[ReportRow], list[ReportRow]]:
    """Every known seat (idle ones too: a leaderboard shows who did nothing), ranked:
    ``(humans, robots)``."""
    humans: list[tuple[str, SeatInfo, SeatTally]] = []
    robots: list[tuple[str, SeatInfo, SeatTally]] = []
    for seat in sorted(set(totals) | set(seats)):
        info = seats.get(seat, SeatInfo(seat))
        if team is not None and info.team != team:
            continue
        entry = (seat, info, totals.get(seat, SeatTally()))
        (robots if info.kind == "robot" else humans).append(entry)
    found = quotas or {}
    return _ranked(humans, found), _ranked(robots, found)


def _ranked(
    entries: list[tuple[str, SeatInfo, SeatTally]], quotas: Mapping[str, SeatPeriod]
) -> list[ReportRow]:
    entries.sort(key=lambda item: (-item[2].talk_seconds, -item[2].effective, item[0]))
    rows: list[ReportRow] = []
    for position, (seat, info, t) in enumerate(entries, start=1):
        previous = rows[-1] if rows else None
        tied = previous and (previous.talk_seconds, previous.effective) == (
            t.talk_seconds,
            t.effective,
        )
        rank = previous.rank if previous and tied else position
        rows.append(
            ReportRow(
                rank, seat, info.name, info.team, info.kind, t.calls, t.answered, t.effective,
                t.talk_seconds, t.hold_seconds, t.faxes, t.outbound, quotas.get(seat),
            )
        )  # fmt: skip
    return rows
