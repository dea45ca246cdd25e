"""The engine behind the metrics port ``ctid.metrics.quota.QuotaProvider`` (per-seat gauges).

Asked every scrape, a slice of seats at a time, on the event loop thread: the engine is not
thread-safe. Quotas go out in base units (talk in seconds), as the metrics port wants; seats
with no quota today are left out, so dashboards show "no data" rather than a misleading zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence

from ctid.metrics.quota import Pace, QuotaStatus
from ctid.policy.engine import QuotaEngine
from ctid.policy.progress import Status
from ctid.policy.schema import QuotaName

_PACE: dict[Status, Pace] = {
    "met": Pace.AHEAD,
    "on_track": Pace.ON_TRACK,
    "behind": Pace.BEHIND,
    "at_risk": Pace.BEHIND,
    "short": Pace.BEHIND,
    "off": Pace.ON_TRACK,
}


def _status(quota: QuotaName, target: float, actual: float, status: Status) -> QuotaStatus:
    if quota == "talk_minutes":
        return QuotaStatus("talk_seconds", target * 60, actual * 60, _PACE[status])
    return QuotaStatus(quota, target, actual, _PACE[status])


class EngineQuotaProvider:
    def __init__(self, engine: QuotaEngine) -> None:
        self.engine = engine

    def quota_seats(self) -> Collection[str]:
        return self.engine.seats

    def seat_quotas(self, now: float, seats: Iterable[str]) -> Mapping[str, Sequence[QuotaStatus]]:
        moment = dt.datetime.fromtimestamp(now, dt.UTC)
        return {
            seat: [_status(*pace) for pace in paces]
            for seat, paces in self.engine.floor_progress(moment, seats)
        }
