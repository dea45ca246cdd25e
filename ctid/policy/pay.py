"""The monthly pay estimate of a seat (pure): ``[pay]``'s named coefficients summed — base +
per effective call + per A- and B-class customer of verified follow-ups + a share of revenue.
No expression from the policy file is ever evaluated."""

from __future__ import annotations

from dataclasses import dataclass

from ctid.policy.period import SeatPeriod
from ctid.policy.schema import Pay


@dataclass(frozen=True, slots=True)
class PayEstimate:
    base: float
    calls: float
    a_class: float
    b_class: float
    revenue: float

    @property
    def total(self) -> float:
        return self.base + self.calls + self.a_class + self.b_class + self.revenue


def estimate(pay: Pay, effective_calls: int, period: SeatPeriod, revenue: float) -> PayEstimate:
    return PayEstimate(
        base=pay.base,
        calls=pay.per_effective_call * effective_calls,
        a_class=pay.per_a_class * period.claims.a_class,
        b_class=pay.per_b_class * period.claims.b_class,
        revenue=pay.revenue_share * revenue,
    )
