"""The engine behind the metrics port ``ctid.metrics.quota.QuotaProvider`` (per-seat gauges).

Asked once per scrape, on the event loop thread: the engine is not thread-safe. Quotas go out
in base units (talk in seconds), as the metrics port wants; seats with no quota today are left
out, so dashboards show "no data" rather than a misleading zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from ctid.metrics.quota import Pace, QuotaStatus
from ctid.policy.engine import QuotaEngine
from ctid.policy.progress import QuotaProgress, Status

_PACE: dict[Status, Pace] = {
    "met": Pace.AHEAD,
    "on_track": Pace.ON_TRACK,
    "behind": Pace.BEHIND,
    "at_risk": Pace.BEHIND,
    "short": Pace.BEHIND,
    "off": Pace.ON_TRACK,
}


def _status(progress: QuotaProgress) -> QuotaStatus:
    if progress.quota == "talk_minutes":
        return QuotaStatus(
            "talk_seconds", progress.target * 60, progress.actual * 60, _PACE[progress.status]
        )
    return QuotaStatus(progress.quota, progress.target, progress.actual, _PACE[progress.status])


class EngineQuotaProvider:
    def __init__(self, engine: QuotaEngine) -> None:
        self.engine = engine

    def seat_quotas(self, now: float) -> Mapping[str, Sequence[QuotaStatus]]:
        moment = dt.datetime.fromtimestamp(now, dt.UTC)
        out: dict[str, list[QuotaStatus]] = {}
        for seat in self.engine.seat_ids():
            evaluation = self.engine.evaluate(seat, moment)
            if evaluation.quotas:
                out[seat] = [_status(p) for p in evaluation.quotas.values()]
        return out
