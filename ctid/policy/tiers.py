"""Who a seat is on a given day (tenure, experience) and which tier of quotas that puts it in.

Boundaries, all in whole local days:
- ``tenure_days_lt = 15``: the hire date is day 0, so days 0–14 are "the first half-month".
- ``tenure_months_lt = 6``: holds while ``hire_date + 6 calendar months > day``; a month-end
  hire date is clamped (31 Aug + 6 months = 28/29 Feb).
- Unknown data (no hire date, no prior experience) makes the key false, never true, so a
  missing fact can not silently lower a quota.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from ctid.policy.schema import Condition, SeatKind, Tier


@dataclass(frozen=True, slots=True)
class SeatProfile:
    id: str
    name: str
    team: str
    site: str
    kind: SeatKind = "human"
    hire_date: dt.date | None = None
    prior_experience_years: float | None = None


def add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def condition_holds(condition: Condition, seat: SeatProfile, day: dt.date) -> bool:
    hire = seat.hire_date
    checks: list[bool] = []
    if condition.tenure_days_lt is not None:
        checks.append(hire is not None and (day - hire).days < condition.tenure_days_lt)
    if condition.tenure_months_lt is not None:
        checks.append(hire is not None and add_months(hire, condition.tenure_months_lt) > day)
    if condition.prior_experience_years_lt is not None:
        years = seat.prior_experience_years
        checks.append(years is not None and years < condition.prior_experience_years_lt)
    if condition.kind is not None:
        checks.append(seat.kind == condition.kind)
    if condition.any is not None:
        checks.append(any(condition_holds(c, seat, day) for c in condition.any))
    if condition.all is not None:
        checks.append(all(condition_holds(c, seat, day) for c in condition.all))
    return all(checks)


def choose_tier(tiers: list[Tier], seat: SeatProfile, day: dt.date) -> Tier:
    """The first tier whose condition holds; the policy guarantees the last one always does."""
    for tier in tiers:
        if tier.when is None or condition_holds(tier.when, seat, day):
            return tier
    raise AssertionError("policy without an unconditional last tier")  # schema forbids it
