"""Monthly performance points and the pay estimate of a seat (pure).

Points start at ``[scorecard] base`` and add signed points: per whole 1 % of the chosen quota's
attainment above 100 %, per missed workday (a measured quota short of the day's own target),
per falsified follow-up, per violation by rule. Above ``bonus_above`` the seat is in the bonus
band, below ``deduction_below`` in the deduction band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ctid.policy.period import SeatPeriod
from ctid.policy.schema import Scorecard

Band = Literal["bonus", "normal", "deduction"]
_EPSILON = 1e-9
"""1.15 is 114.99999999999999 % in floats: it must give its 15 points."""


@dataclass(frozen=True, slots=True)
class Points:
    base: float
    attainment: float
    missed_workdays: float
    falsified: float
    violations: float

    @property
    def total(self) -> float:
        return self.base + self.attainment + self.missed_workdays + self.falsified + self.violations


def percent_over(attainment: float | None) -> int:
    """Whole percentage points above 100 %; 0 without a target or at or below it."""
    if attainment is None or attainment <= 1:
        return 0
    return math.floor((attainment - 1) * 100 + _EPSILON)


def score(card: Scorecard, period: SeatPeriod, violations: Mapping[str, int]) -> Points:
    """``violations``: the seat's count per rule over the month."""
    over = percent_over(period.attainment[card.attainment_quota])
    return Points(
        base=card.base,
        attainment=over * card.per_attainment_percent,
        missed_workdays=period.missed_workdays * card.per_missed_workday,
        falsified=period.claims.falsified * card.per_falsified_follow_up,
        violations=sum(card.per_violation.get(rule, 0.0) * n for rule, n in violations.items()),
    )


def band(card: Scorecard, total: float) -> Band:
    if total > card.bonus_above:
        return "bonus"
    return "deduction" if total < card.deduction_below else "normal"
