"""Abandoned-call rate per queue over a rolling window, against a ceiling; and report windows.

Pure arithmetic: ``rate = abandoned / offered`` over calls that ended inside
``(now - window, now]``, judged only once ``offered >= min_calls``.  A breach is reported
when the rate crosses above the ceiling, not on every call while it stays there.

The judged window keeps every call (exact to the second).  The report windows (24 h and
30 days by default, for the ``ctid_abandon_rate_ratio`` gauge) keep counts in at most
:data:`BUCKETS` equal time buckets each, so memory stays bounded whatever the call volume.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

BUCKETS = 1440
"""Buckets per report window: 1 minute for 24 h, 30 minutes for 30 days."""
MIN_BUCKET_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Breach:
    queue: str
    offered: int
    abandoned: int

    @property
    def rate(self) -> float:
        return self.abandoned / self.offered


class WindowCount(NamedTuple):
    """Calls of one queue that ended in one report window."""

    queue: str
    window: str
    """The window's label: ``24h``, ``30d``."""
    offered: int
    abandoned: int


def window_label(seconds: float) -> str:
    """``86400`` → ``24h``, ``2592000`` → ``30d``, ``1800`` → ``30m``."""
    minutes = round(seconds / 60)
    if minutes > 1440 and minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


class BucketedWindow:
    """Offered and abandoned calls in the last ``span`` seconds, counted in time buckets.

    A bucket is ``width`` seconds (``span / BUCKETS``, at least a minute); the window is the
    current bucket and the ones before it, ``count`` in all, so a call leaves it between
    ``span - width`` and ``span`` after it ended.
    """

    def __init__(self, span: float) -> None:
        self.label = window_label(span)
        self.width = max(MIN_BUCKET_SECONDS, span / BUCKETS)
        self.count = max(1, round(span / self.width))
        self._buckets: deque[list[int]] = deque()
        """[bucket index, offered, abandoned], oldest first."""
        self.offered = 0
        self.abandoned = 0

    def add(self, ts: float, abandoned: bool) -> None:
        index = int(ts // self.width)
        if not self._buckets or self._buckets[-1][0] < index:
            self._buckets.append([index, 0, 0])
        # A call reported slightly out of order (another PBX's clock) joins the newest bucket.
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += abandoned
        self.offered += 1
        self.abandoned += abandoned
        self._expire(index)  # bounded even if nobody asks for the totals

    def __len__(self) -> int:
        """Buckets held: at most ``count + 1``."""
        return len(self._buckets)

    def totals(self, now: float) -> tuple[int, int]:
        """(offered, abandoned) in the window ending at ``now``."""
        self._expire(int(now // self.width))
        return self.offered, self.abandoned

    def _expire(self, current: int) -> None:
        oldest_out = current - self.count
        buckets = self._buckets
        while buckets and buckets[0][0] <= oldest_out:
            _, offered, abandoned = buckets.popleft()
            self.offered -= offered
            self.abandoned -= abandoned


class AbandonRate:
    def __init__(
        self,
        ceiling: float,
        window: float,
        min_calls: int,
        report_windows: Iterable[float] = (),
    ) -> None:
        self._ceiling, self._window, self._min_calls = ceiling, window, min_calls
        self._report_spans = list(report_windows)
        self._calls: dict[str, deque[tuple[float, bool]]] = {}
        self._abandoned: dict[str, int] = {}
        self._breached: set[str] = set()
        self._reports: dict[str, list[BucketedWindow]] = {}

    def record(self, queue: str, ts: float, abandoned: bool) -> Breach | None:
        """Count one offered call; a :class:`Breach` when this call pushed the rate over."""
        calls = self._calls.setdefault(queue, deque())
        calls.append((ts, abandoned))
        self._abandoned[queue] = self._abandoned.get(queue, 0) + abandoned
        self._expire(queue, ts)
        if self._report_spans:
            reports = self._reports.get(queue)
            if reports is None:
                reports = self._reports[queue] = [BucketedWindow(s) for s in self._report_spans]
            for report in reports:
                report.add(ts, abandoned)
        offered, lost = len(calls), self._abandoned[queue]
        over = offered >= self._min_calls and lost / offered > self._ceiling
        if not over:
            self._breached.discard(queue)
            return None
        if queue in self._breached:
            return None
        self._breached.add(queue)
        return Breach(queue, offered, lost)

    def rate(self, queue: str, now: float) -> tuple[int, int]:
        """(offered, abandoned) in the window ending at ``now``."""
        if queue not in self._calls:
            return 0, 0
        self._expire(queue, now)
        return len(self._calls[queue]), self._abandoned[queue]

    def report(self, now: float) -> list[WindowCount]:
        """Each queue's counts in each report window ending at ``now``.

        A queue with no call left in any report window is forgotten.
        """
        counts: list[WindowCount] = []
        for queue, reports in list(self._reports.items()):
            figures = [(r.label, *r.totals(now)) for r in reports]
            if not any(offered for _, offered, _ in figures):
                del self._reports[queue]
                continue
            counts.extend(WindowCount(queue, *figure) for figure in figures)
        return counts

    def _expire(self, queue: str, now: float) -> None:
        calls = self._calls[queue]
        horizon = now - self._window
        while calls and calls[0][0] <= horizon:
            _, was_abandoned = calls.popleft()
            self._abandoned[queue] -= was_abandoned
