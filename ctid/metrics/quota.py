"""Ports for values that later engines provide: quotas per seat, the site's working day.

Nothing here computes a quota: the quota engine implements :class:`QuotaProvider`
(``ctid.policy.provider``); until one is registered the per-seat quota families are rendered with
no samples, so dashboards show "no data" rather than a misleading zero.

The working day is plain clock arithmetic in the site's time zone and is exported now: the
wallboard's "time to end of day" and the late-in-the-day alert need it.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

from prometheus_client.core import GaugeMetricFamily, Metric


class Pace(enum.IntEnum):
    """Where a seat stands against the share of its quota due by now (exported as the value)."""

    BEHIND = -1
    ON_TRACK = 0
    AHEAD = 1


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    quota: str
    """A short, bounded name: ``talk_seconds``, ``effective_calls``, ..."""
    target: float
    """Today's target in the quota's base unit (seconds, calls)."""
    attained: float
    pace: Pace

    @property
    def attainment_ratio(self) -> float:
        return self.attained / self.target if self.target > 0 else 0.0


class QuotaProvider(Protocol):
    """Implemented by the quota engine; asked every scrape, a slice of seats at a time."""

    def quota_seats(self) -> Collection[str]:
        """Every seat it may report on: the same object while no seat is added."""
        ...

    def seat_quotas(self, now: float, seats: Iterable[str]) -> Mapping[str, Sequence[QuotaStatus]]:
        """Seat id → its quotas today, for ``seats`` (those without a quota may be left out)."""
        ...


@dataclass(frozen=True, slots=True)
class Workday:
    """The floor's working hours, local time; a shift ending at or before it starts ends the
    next day (night shifts)."""

    tz: ZoneInfo
    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(18, 0)

    def bounds(self, now: float) -> tuple[float, float]:
        """Start and end (epoch seconds) of the shift running at ``now``, else today's."""
        today = dt.datetime.fromtimestamp(now, self.tz).date()
        spans = [self._span(day) for day in (today - dt.timedelta(days=1), today)]
        for begin, finish in spans:
            if begin <= now < finish:
                return begin, finish
        return spans[-1]

    def _span(self, day: dt.date) -> tuple[float, float]:
        begin = dt.datetime.combine(day, self.start, tzinfo=self.tz)
        finish = dt.datetime.combine(day, self.end, tzinfo=self.tz)
        if finish <= begin:
            finish += dt.timedelta(days=1)
        return begin.timestamp(), finish.timestamp()

    def progress(self, now: float) -> tuple[float, float]:
        """(share of the working day elapsed, clamped to [0, 1]; seconds until it ends, ≥ 0)."""
        begin, finish = self.bounds(now)
        ratio = min(1.0, max(0.0, (now - begin) / (finish - begin)))
        return ratio, max(0.0, finish - now)


class WorkdayCollector:
    """``ctid_workday_progress_ratio`` and ``ctid_workday_remaining_seconds`` for the site."""

    def __init__(self, site: str, workday: Workday, clock: Callable[[], float]) -> None:
        self._site = site
        self._workday = workday
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        ratio, remaining = self._workday.progress(self._clock())
        progress = GaugeMetricFamily(
            "ctid_workday_progress_ratio",
            "Share of the site's working day elapsed (0 before it starts, 1 after it ends)",
            labels=["site"],
        )
        progress.add_metric([self._site], ratio)
        left = GaugeMetricFamily(
            "ctid_workday_remaining_seconds",
            "Seconds until the site's working day ends (0 once it has ended)",
            labels=["site"],
        )
        left.add_metric([self._site], remaining)
        yield from (progress, left)
