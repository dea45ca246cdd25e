"""Putting a period report together from what was read: seats, daily tallies, the policy.

No I/O here (:mod:`ctid.store.commands` reads the store and the policy file). Seat facts merge
as in the daemon: the store's ``seats`` table, then the main config, then the policy's
``[[seats]]`` (:func:`~ctid.policy.loader.resolve_seats`); a seat met only in calls is a human
of team ``default``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from ctid.policy.leaderboard import Board, Contender, leaderboards
from ctid.policy.loader import resolve_seats
from ctid.policy.period import (
    MEASURED_BY_TALLIES,
    MEASURED_WITH_FOLLOW_UPS,
    AdjustmentSource,
    Quantities,
    SeatPeriod,
    centre_totals,
    quota_actuals,
    seat_period,
    team_totals,
)
from ctid.policy.schema import Policy, SeatKind
from ctid.policy.tiers import SeatProfile
from ctid.store.directory import SeatInfo
from ctid.store.period_followups import SeatClaims
from ctid.store.reporting import Period, PeriodReport, QuotaSummary, build_rows
from ctid.tracker.tallies import SeatTally

DailyTallies = Mapping[dt.date, Mapping[str, SeatTally]]
"""Per local day, per seat."""


@dataclass(frozen=True, slots=True)
class _ConfigSeat:
    """A directory entry in the shape :func:`resolve_seats` reads from the main config."""

    id: str
    name: str
    team: str
    hire_date: dt.date | None
    kind: SeatKind


def seat_profiles(
    policy: Policy, directory: Mapping[str, SeatInfo], seen: set[str]
) -> dict[str, SeatProfile]:
    """Tier facts of every seat in the directory, the policy or the calls (``seen``)."""
    entries = {
        seat: _ConfigSeat(
            seat, info.name, info.team, info.hire_date, "robot" if info.kind == "robot" else "human"
        )
        for seat, info in directory.items()
    }
    profiles = resolve_seats(policy, entries)
    site = policy.site_of_team("default")
    for seat in seen - set(profiles):
        profiles[seat] = SeatProfile(seat, seat, "default", site)
    return profiles


def displayed_seats(
    directory: Mapping[str, SeatInfo], profiles: Mapping[str, SeatProfile]
) -> dict[str, SeatInfo]:
    """Team and kind as the policy has them; the name only where one is known (not the id)."""
    out = dict(directory)
    for seat, profile in profiles.items():
        known = directory.get(seat, SeatInfo(seat))
        name = profile.name if profile.name != seat else known.name
        out[seat] = SeatInfo(seat, name, profile.team, profile.kind, profile.hire_date)
    return out


def seat_days(
    zones: Mapping[str, DailyTallies], zone_of: Mapping[str, str], default_zone: str
) -> dict[str, dict[dt.date, SeatTally]]:
    """Per seat, its days as counted in its site's time zone."""
    seats = {seat for days in zones.values() for tallies in days.values() for seat in tallies}
    out: dict[str, dict[dt.date, SeatTally]] = {}
    for seat in seats:
        days = zones[zone_of.get(seat, default_zone)]
        out[seat] = {day: tallies[seat] for day, tallies in days.items() if seat in tallies}
    return out


def period_totals(days: Mapping[str, Mapping[dt.date, SeatTally]]) -> dict[str, SeatTally]:
    totals: dict[str, SeatTally] = {}
    for seat, per_day in days.items():
        total = totals[seat] = SeatTally()
        for tally in per_day.values():
            total.add(tally)
    return totals


@dataclass(frozen=True, slots=True)
class QuotaInputs:
    policy: Policy
    profiles: Mapping[str, SeatProfile]
    """Every seat of the report (:func:`seat_profiles`)."""
    adjustments: AdjustmentSource
    claims: Mapping[str, SeatClaims] | None = None
    """Verified follow-up claims per seat; ``None``: follow-ups are not measured."""


def _seat_actuals(
    days: Mapping[dt.date, SeatTally], claims: SeatClaims | None
) -> dict[dt.date, Quantities]:
    actuals = {day: quota_actuals(tally) for day, tally in days.items()}
    for day, customers in (claims.per_day if claims else {}).items():
        actuals.setdefault(day, {})["follow_ups"] = float(customers)
    return actuals


def assemble(
    period: Period,
    days: Mapping[str, Mapping[dt.date, SeatTally]],
    seats: Mapping[str, SeatInfo],
    *,
    timezone: str,
    completeness: Mapping[str, float],
    team: str | None,
    quota_inputs: QuotaInputs | None = None,
) -> PeriodReport:
    counted = list(period.days())
    quotas: dict[str, SeatPeriod] = {}
    if quota_inputs is not None:
        policy, profiles = quota_inputs.policy, quota_inputs.profiles
        claims = quota_inputs.claims
        measured = MEASURED_BY_TALLIES if claims is None else MEASURED_WITH_FOLLOW_UPS
        for seat in set(seats) | set(days):
            if team is None or seats.get(seat, SeatInfo(seat)).team == team:
                found = None if claims is None else claims.get(seat)
                quotas[seat] = seat_period(
                    policy,
                    profiles[seat],
                    counted,
                    _seat_actuals(days.get(seat, {}), found),
                    quota_inputs.adjustments,
                    measured,
                    found.counts if found else None,
                )
    humans, robots = build_rows(period_totals(days), seats, team=team, quotas=quotas)
    summary = None
    if quota_inputs is not None:
        by_team: dict[str, list[SeatPeriod]] = {}
        for row in humans:
            by_team.setdefault(row.team, []).append(quotas[row.seat])
        policy = quota_inputs.policy
        teams = [team_totals(policy, name, by_team[name], counted) for name in sorted(by_team)]
        summary = QuotaSummary(policy.version, policy.fines.currency, teams, centre_totals(teams))
    return PeriodReport(period, timezone, team, completeness, humans, robots, summary)


def monthly_boards(report: PeriodReport, policy: Policy) -> list[Board]:
    """The leaderboards of a monthly report (human seats; ``[recognition]`` of the policy)."""
    quota = policy.recognition.attainment_quota
    contenders = [
        Contender(
            row.seat,
            row.name,
            row.team,
            None if row.quota is None else row.quota.attainment[quota],
            row.effective,
        )
        for row in report.seats
    ]
    return leaderboards(contenders, policy.recognition.top)
