"""Contact frequency: attempts per number in a rolling day and week, site-wide and per seat.

Each key keeps one deque of attempt times per window; old times leave from the left as new
ones arrive, so checking and recording are O(1) amortised.  Windows are half-open: an attempt
exactly 24 h old no longer counts against the day.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from ctid.compliance.settings import Cap

DAY = 86_400.0
WEEK = 7 * DAY


class RollingCounter:
    """Times per key inside ``(now - span, now]``."""

    def __init__(self, span: float) -> None:
        self._span = span
        self._times: dict[Hashable, deque[float]] = {}

    def count(self, key: Hashable, now: float) -> int:
        times = self._times.get(key)
        if times is None:
            return 0
        horizon = now - self._span
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._times[key]  # numbers dialled once must not pile up forever
            return 0
        return len(times)

    def add(self, key: Hashable, now: float) -> None:
        self._times.setdefault(key, deque()).append(now)


class CappedCounter:
    """A :class:`Cap` (per day, per week) over keys."""

    def __init__(self, cap: Cap) -> None:
        self._limits = [
            (limit, RollingCounter(span), label)
            for limit, span, label in ((cap.per_day, DAY, "24 h"), (cap.per_week, WEEK, "7 days"))
            if limit is not None
        ]

    def violation(self, key: Hashable, now: float) -> str | None:
        for limit, counter, label in self._limits:
            done = counter.count(key, now)
            if done >= limit:
                return f"{done} attempts in {label} (cap {limit})"
        return None

    def add(self, key: Hashable, now: float) -> None:
        for _, counter, _ in self._limits:
            counter.add(key, now)


class FrequencyCaps:
    def __init__(self, site: Cap, seat: Cap) -> None:
        self._site = CappedCounter(site)
        self._seat = CappedCounter(seat)

    def violation(self, number: str, seat: str | None, now: float) -> str | None:
        """``number`` is E.164, so ``0720…`` and ``+1720…`` count as one callee."""
        reason = self._site.violation(number, now)
        if reason is not None:
            return f"site-wide: {reason}"
        if seat is not None and (reason := self._seat.violation((seat, number), now)):
            return f"seat {seat}: {reason}"
        return None

    def record(self, number: str, seat: str | None, now: float) -> None:
        self._site.add(number, now)
        if seat is not None:
            self._seat.add((seat, number), now)
