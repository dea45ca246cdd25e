"""Abandoned-call rate per queue over a rolling window, against a ceiling.

Pure arithmetic: ``rate = abandoned / offered`` over calls that ended inside
``(now - window, now]``, judged only once ``offered >= min_calls``.  A breach is reported
when the rate crosses above the ceiling, not on every call while it stays there.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Breach:
    queue: str
    offered: int
    abandoned: int

    @property
    def rate(self) -> float:
        return self.abandoned / self.offered


class AbandonRate:
    def __init__(self, ceiling: float, window: float, min_calls: int) -> None:
        self._ceiling, self._window, self._min_calls = ceiling, window, min_calls
        self._calls: dict[str, deque[tuple[float, bool]]] = {}
        self._abandoned: dict[str, int] = {}
        self._breached: set[str] = set()

    def record(self, queue: str, ts: float, abandoned: bool) -> Breach | None:
        """Count one offered call; a :class:`Breach` when this call pushed the rate over."""
        calls = self._calls.setdefault(queue, deque())
        calls.append((ts, abandoned))
        self._abandoned[queue] = self._abandoned.get(queue, 0) + abandoned
        self._expire(queue, ts)
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

    def _expire(self, queue: str, now: float) -> None:
        calls = self._calls[queue]
        horizon = now - self._window
        while calls and calls[0][0] <= horizon:
            _, was_abandoned = calls.popleft()
            self._abandoned[queue] -= was_abandoned
