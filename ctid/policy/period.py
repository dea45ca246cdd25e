"""Quota attainment and fines of a seat over several days (a week, a dekad, a month): pure.

Each day's targets are the live engine's, from the same pure functions: the tier that holds for
the seat on that day (tenure counted on that day), reduced by that day's adjustments, nothing on
a non-workday, a holiday, on leave, or before the hire date. Attainment per quota is the actual
over the days divided by the sum of those targets.

Fines are computed day by day, never from the period total: a day's shortfall costs the fine per
missing unit. A human's shortfall on a day without carried deficits is owed on its make-up day
(:func:`~ctid.policy.workday.makeup_day_after`), as in the engine: that day's due is its own
targets plus the deficits, a make-up day's own shortfall is not carried again, and robots owe
no make-up. Each missing unit is fined once, when final: on the make-up day for what is still
missing there, or on its own day when the make-up day lies after the last day evaluated.

Follow-ups claimed in the CRM are judged by the store (verified against the calls); here a
seat's period carries their counts, and each falsified (unverified) claim costs
``[fines] per_falsified_follow_up`` on top of the quota fines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ctid.policy.adjustments import DayAdjustment, adjusted_targets
from ctid.policy.progress import fine_for, quota_progress, reached
from ctid.policy.schema import QUOTA_NAMES, Policy, QuotaName
from ctid.policy.tiers import SeatProfile, choose_tier
from ctid.policy.workday import is_workday, makeup_day_after
from ctid.tracker.tallies import SeatTally

Quantities = dict[QuotaName, float]

MEASURED_BY_TALLIES: frozenset[QuotaName] = frozenset(
    {"talk_minutes", "effective_calls", "faxes", "dials"}
)
"""What the tracker's daily tallies (so the store) count; follow-ups come from the CRM."""
MEASURED_WITH_FOLLOW_UPS: frozenset[QuotaName] = MEASURED_BY_TALLIES | {"follow_ups"}
"""With the CRM's claims verified: a day's ``follow_ups`` actual is its verified customers."""


@dataclass(frozen=True, slots=True)
class ClaimCounts:
    """A seat's follow-up claims over the period, as the store verified them."""

    claimed: int = 0
    verified: int = 0
    a_class: int = 0
    """Distinct customers of verified class-A claims."""
    b_class: int = 0
    """Distinct customers of verified class-B claims (not also claimed as A)."""

    @property
    def falsified(self) -> int:
        return self.claimed - self.verified


class AdjustmentSource(Protocol):
    """Per seat-day adjustments: :class:`~ctid.policy.adjustments.Adjustments` is one."""

    def for_day(self, seat: str, day: dt.date) -> DayAdjustment: ...


def quota_actuals(tally: SeatTally) -> Quantities:
    """A day's tally in quota units, counted as the engine counts them."""
    return {
        "talk_minutes": tally.talk_seconds / 60,
        "effective_calls": float(tally.effective),
        "faxes": float(tally.faxes),
        "dials": float(tally.outbound),  # calls the seat placed, answered or not, faxes too
    }


def ratio(actual: float | None, target: float) -> float | None:
    """Attainment; ``None`` when there is no target to attain or the actual is unknown."""
    return None if actual is None or target <= 0 else actual / target


def day_targets(
    policy: Policy, seat: SeatProfile, day: dt.date, adjustments: AdjustmentSource
) -> tuple[str, Quantities]:
    """The tier in force and the seat's own targets for ``day`` (no make-up deficits)."""
    site = policy.sites[seat.site]
    tier = choose_tier(policy.tiers, seat, day)
    # Before the hire date the seat did not work here: a month's report owes nothing for it.
    if not is_workday(site, day) or (seat.hire_date is not None and day < seat.hire_date):
        return tier.name, {}
    targets = adjusted_targets(
        tier.quotas.as_dict(),
        adjustments.for_day(seat.id, day),
        site.shift_hours,
        policy.field_visit_reduces,
    )
    return tier.name, targets


@dataclass(frozen=True, slots=True)
class DayResult:
    day: dt.date
    tier: str
    targets: Quantities
    """The day's own targets (what attainment sums)."""
    carried: Quantities
    """Deficits of earlier days owed on this make-up day."""
    actuals: Quantities
    fine: float

    def missed(self, measured: frozenset[QuotaName]) -> bool:
        """A measured quota fell short of the day's own target (make-up work aside)."""
        return any(
            not reached(self.actuals.get(q, 0.0), target)
            for q, target in self.targets.items()
            if target > 0 and q in measured
        )


@dataclass(frozen=True, slots=True)
class SeatPeriod:
    seat: SeatProfile
    days: tuple[DayResult, ...]
    measured: frozenset[QuotaName]
    claims: ClaimCounts = ClaimCounts()
    claim_fine: float = 0.0
    """``per_falsified_follow_up`` × the falsified claims."""

    @property
    def targets(self) -> Quantities:
        return _sum(day.targets for day in self.days)

    @property
    def actuals(self) -> dict[QuotaName, float | None]:
        """Per quota over the days; ``None`` for a quota the data does not measure."""
        summed = _sum(day.actuals for day in self.days)
        return {q: summed.get(q, 0.0) if q in self.measured else None for q in QUOTA_NAMES}

    @property
    def attainment(self) -> dict[QuotaName, float | None]:
        targets, actuals = self.targets, self.actuals
        return {q: ratio(actuals[q], targets.get(q, 0.0)) for q in QUOTA_NAMES}

    @property
    def quota_fine(self) -> float:
        return sum(day.fine for day in self.days)

    @property
    def fine(self) -> float:
        """Quota fines and falsified follow-ups."""
        return self.quota_fine + self.claim_fine

    @property
    def missed_workdays(self) -> int:
        return sum(1 for day in self.days if day.missed(self.measured))

    @property
    def tiers(self) -> tuple[str, ...]:
        """Tiers of the days with targets, in order, each once (tenure can cross a boundary)."""
        return tuple(dict.fromkeys(day.tier for day in self.days if day.targets))


def seat_period(
    policy: Policy,
    seat: SeatProfile,
    days: Sequence[dt.date],
    actuals: Mapping[dt.date, Quantities],
    adjustments: AdjustmentSource,
    measured: frozenset[QuotaName] = MEASURED_BY_TALLIES,
    claims: ClaimCounts | None = None,
) -> SeatPeriod:
    """``days``: consecutive, oldest first, none in the future. Deficits of days before the
    first are not carried in: their fines belong to the period those days are in.
    ``claims``: the seat's follow-up claims of the period, verified."""
    site = policy.sites[seat.site]
    owed: dict[dt.date, Quantities] = {}
    results: list[DayResult] = []
    for day in days:
        tier, targets = day_targets(policy, seat, day, adjustments)
        carried = owed.pop(day, {})
        done = actuals.get(day, {})
        due = _sum([targets, carried])
        progress = {
            q: quota_progress(q, target, done.get(q, 0.0), 1.0, True, policy.at_risk_below)
            for q, target in due.items()
            if target > 0 and q in measured
        }
        short = {q: p.missing for q, p in progress.items() if p.missing > 0}
        makeup = makeup_day_after(site, day)
        fine = 0.0
        if short and not carried and seat.kind == "human" and makeup <= days[-1]:
            owed[makeup] = _sum([owed.get(makeup, {}), short])
        else:
            fine = fine_for(progress, policy.fines)
        results.append(DayResult(day, tier, targets, carried, dict(done), fine))
    counted = claims or ClaimCounts()
    claim_fine = counted.falsified * policy.fines.per_falsified_follow_up
    return SeatPeriod(seat, tuple(results), measured, counted, claim_fine)


@dataclass(frozen=True, slots=True)
class Totals:
    """A roll-up of human seats: a team, or the whole centre."""

    name: str
    leader: str
    seats: int
    targets: Quantities
    actuals: dict[QuotaName, float | None]
    fine: float
    claims: ClaimCounts = ClaimCounts()

    @property
    def attainment(self) -> dict[QuotaName, float | None]:
        return {q: ratio(self.actuals[q], self.targets.get(q, 0.0)) for q in QUOTA_NAMES}


def team_totals(
    policy: Policy, team: str, members: Sequence[SeatPeriod], days: Sequence[dt.date]
) -> Totals:
    """Sums over the members; a team target the policy sets counts once per workday of the
    team's site instead of the members' sum (the EOD report's rule, over several days)."""
    targets = _sum(member.targets for member in members)
    configured = policy.teams.get(team)
    if configured is not None:
        site = policy.sites[policy.site_of_team(team)]
        workdays = sum(1 for day in days if is_workday(site, day))
        targets |= {q: daily * workdays for q, daily in configured.targets.as_dict().items()}
    return Totals(
        name=team,
        leader=configured.leader if configured else "",
        seats=len(members),
        targets=targets,
        actuals=_sum_known(member.actuals for member in members),
        fine=sum(member.fine for member in members),
        claims=_sum_claims(member.claims for member in members),
    )


def centre_totals(teams: Sequence[Totals], name: str = "centre") -> Totals:
    return Totals(
        name=name,
        leader="",
        seats=sum(team.seats for team in teams),
        targets=_sum(team.targets for team in teams),
        actuals=_sum_known(team.actuals for team in teams),
        fine=sum(team.fine for team in teams),
        claims=_sum_claims(team.claims for team in teams),
    )


def _sum(parts: Iterable[Mapping[QuotaName, float]]) -> Quantities:
    out: Quantities = {}
    for part in parts:
        for quota, value in part.items():
            out[quota] = out.get(quota, 0.0) + value
    return out


def _sum_known(parts: Iterable[Mapping[QuotaName, float | None]]) -> dict[QuotaName, float | None]:
    """Per quota, the sum; ``None`` when the data measures it for nobody."""
    out: dict[QuotaName, float | None] = dict.fromkeys(QUOTA_NAMES)
    for part in parts:
        for quota, value in part.items():
            if value is not None:
                out[quota] = (out[quota] or 0.0) + value
    return out


def _sum_claims(parts: Iterable[ClaimCounts]) -> ClaimCounts:
    found = list(parts)
    return ClaimCounts(
        claimed=sum(c.claimed for c in found),
        verified=sum(c.verified for c in found),
        a_class=sum(c.a_class for c in found),
        b_class=sum(c.b_class for c in found),
    )
