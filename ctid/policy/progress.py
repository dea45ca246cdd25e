"""Where a seat stands against its targets at a moment: pure functions and their records.

Expected progress is pro rata over the dialing windows elapsed (nothing is expected before the
first window, lunch adds nothing); the forecast extrapolates today's rate over the dialing time
left. Status per quota, first match: ``met`` (actual ≥ target), ``short`` (end of day passed),
``on_track`` (actual ≥ expected), ``at_risk`` (forecast < ``at_risk_below`` × target),
``behind``. A seat's status is its worst quota's; ``off`` when it has no quota that day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ctid.policy.schema import Fines, QuotaName

Status = Literal["off", "met", "on_track", "behind", "at_risk", "short"]
STATUS_SEVERITY: dict[Status, int] = {
    "off": 0,
    "met": 1,
    "on_track": 2,
    "behind": 3,
    "at_risk": 4,
    "short": 5,
}
_UNIT_EPSILON = 1e-6
"""Talk is a float sum of seconds: 120 calls of 50 s make 99.99999999999987 minutes, which
must count as the 100 minutes they are, never as "short by 1e-13" or "1 unit missing"."""


def reached(actual: float, target: float) -> bool:
    return actual >= target - _UNIT_EPSILON


@dataclass(frozen=True, slots=True)
class QuotaProgress:
    quota: QuotaName
    target: float
    actual: float
    expected: float
    forecast: float
    status: Status

    @property
    def attainment(self) -> float:
        return self.actual / self.target if self.target > 0 else 1.0

    @property
    def missing(self) -> float:
        return 0.0 if reached(self.actual, self.target) else self.target - self.actual


def quota_progress(
    quota: QuotaName,
    target: float,
    actual: float,
    dialing_share: float,
    after_end_of_day: bool,
    at_risk_below: float,
) -> QuotaProgress:
    expected = target * dialing_share
    forecast = actual / dialing_share if dialing_share > 0 else actual
    status = pace_status(target, actual, dialing_share, after_end_of_day, at_risk_below)
    return QuotaProgress(quota, target, actual, expected, forecast, status)


def pace_status(
    target: float,
    actual: float,
    dialing_share: float,
    after_end_of_day: bool,
    at_risk_below: float,
) -> Status:
    """The status of :func:`quota_progress` alone: what a scrape of every seat needs."""
    if reached(actual, target):
        return "met"
    if after_end_of_day:
        return "short"
    if actual >= target * dialing_share:
        return "on_track"
    forecast = actual / dialing_share if dialing_share > 0 else actual
    return "at_risk" if forecast < at_risk_below * target else "behind"


def worst_status(statuses: list[Status]) -> Status:
    return max(statuses, key=STATUS_SEVERITY.__getitem__, default="off")


def missing_units(progress: QuotaProgress) -> int:
    """Whole units short: 119.5 calls done of 120 is one call missing."""
    return math.ceil(progress.missing - _UNIT_EPSILON) if progress.missing else 0


FINED: frozenset[Status] = frozenset({"behind", "at_risk", "short"})


def fine_for(progress: Mapping[QuotaName, QuotaProgress], fines: Fines) -> float:
    """What the shortfall would cost if the day ended now; a quota on track costs nothing
    (before the first dialing window everything is on track)."""
    return sum(
        fines.per_unit(q) * missing_units(p) for q, p in progress.items() if p.status in FINED
    )
