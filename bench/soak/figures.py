"""The soak's figures from its samples: rates, RSS slope, loop-lag quantiles, CPU shares.

Three windows: *after warm-up* (the first 20 % of the load phase left out, as asked of a flat
RSS), *after the ramp* (the first call cycle left out: until every seat has started its first
call, the floor's call rate is still climbing; see :mod:`bench.soak.floor`) and *once full*
(the ramp plus the longest time-bounded memory the daemon keeps, the live CDR check's 10
minutes of decided calls: before that, RSS grows by design).  All end when the last call may
start; the drain that follows is not steady load.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.soak.run import Sample, SoakRun
from ctid.store.live_reconcile import DECIDED_RETENTION_S

WARMUP_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class Slope:
    per_minute: float
    stderr: float
    """Standard error of the slope: how finely the run can tell flat from growing."""
    samples: int


def least_squares(points: Sequence[tuple[float, float]]) -> Slope | None:
    """Slope of ``y`` over ``x`` (x in minutes) by ordinary least squares; None below 3 points."""
    n = len(points)
    if n < 3:
        return None
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    residuals = sum((y - mean_y - slope * (x - mean_x)) ** 2 for x, y in points)
    return Slope(slope, math.sqrt(residuals / (n - 2) / sxx), n)


Buckets = tuple[tuple[float, float], ...]


def bucket_difference(later: Buckets, earlier: Buckets) -> Buckets:
    """Observations between two scrapes of one cumulative histogram."""
    before = dict(earlier)
    return tuple((le, count - before.get(le, 0.0)) for le, count in later)


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """Like PromQL's ``histogram_quantile``: linear inside the bucket the rank falls in."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower  # beyond the last finite bound: that bound is all we know
            return lower + (le - lower) * (rank - below) / (count - below) if count > below else le
        lower, below = le, count
    return lower


def histogram_max_bound(buckets: Buckets) -> float | None:
    """Upper bound of the slowest observation: the first bucket that holds them all."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    return next(le for le, count in buckets if count >= total)


@dataclass(frozen=True, slots=True)
class Window:
    """Samples from ``start`` to the end of the load phase."""

    samples: list[Sample]

    @classmethod
    def of(cls, run: SoakRun, start: float) -> Window:
        return cls([s for s in run.samples if start <= s.t <= run.load_end_t + 1e-6])

    @property
    def seconds(self) -> float:
        return self.samples[-1].t - self.samples[0].t if len(self.samples) > 1 else 0.0

    def share(self, cpu: str) -> float | None:
        """CPU seconds of ``cpu`` (a :class:`Sample` field) per second of the window."""
        if self.seconds <= 0:
            return None
        first, last = self.samples[0], self.samples[-1]
        return float(getattr(last, cpu) - getattr(first, cpu)) / self.seconds

    def frames_per_second(self) -> float | None:
        if self.seconds <= 0:
            return None
        frames = self.samples[-1].counters.frames - self.samples[0].counters.frames
        return frames / self.seconds

    def rss_slope(self) -> Slope | None:
        return least_squares([(s.t / 60, float(s.rss_kib)) for s in self.samples])

    def lag(self) -> Buckets:
        if not self.samples:
            return ()
        return bucket_difference(
            self.samples[-1].counters.lag_buckets, self.samples[0].counters.lag_buckets
        )


def peak_interval_rate(samples: Sequence[Sample]) -> float | None:
    """Fastest frames/s between two consecutive samples."""
    rates = [
        (b.counters.frames - a.counters.frames) / (b.t - a.t)
        for a, b in itertools.pairwise(samples)
        if b.t > a.t
    ]
    return max(rates, default=None)


def filled_seconds(run: SoakRun) -> float | None:
    """Wall seconds until every bounded structure is full; None if the load ends within a
    minute of it (too few samples for a slope)."""
    filled = ramp_seconds(run) + DECIDED_RETENTION_S / run.floor.speed
    return filled if filled <= run.load_end_t - 60 else None


def ramp_seconds(run: SoakRun) -> float:
    """Wall seconds until every seat has started its first call (one call cycle)."""
    cycle = 3600.0 / run.floor.calls_per_seat_hour / run.floor.speed
    return min(cycle, run.load_end_t)
