"""Disclosure: an answered customer call must hear the disclosure within N seconds.

The dialplan raises ``UserEvent(CtidDisclosure)`` on a channel of the call; the rule is a
pure function of what it saw and ``now``: :meth:`DisclosureWatch.due` returns the calls whose
deadline passed without one.  A tiny timer (:mod:`ctid.compliance.runner`) calls it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass


@dataclass(slots=True)
class DialledCall:
    pbx: str
    linkedid: str
    seat: str | None
    number: str
    caller_uniqueid: str | None
    answered_at: float | None = None


class DisclosureWatch:
    def __init__(self, within: float) -> None:
        self._within = within
        self._calls: dict[tuple[str, str], DialledCall] = {}
        self._deadlines: list[tuple[float, str, str]] = []

    def dialled(self, call: DialledCall) -> None:
        self._calls.setdefault((call.pbx, call.linkedid), call)

    def answered(self, pbx: str, linkedid: str, ts: float) -> None:
        call = self._calls.get((pbx, linkedid))
        if call is not None and call.answered_at is None:
            call.answered_at = ts
            heapq.heappush(self._deadlines, (ts + self._within, pbx, linkedid))

    def disclosed(self, pbx: str, linkedid: str) -> None:
        self._calls.pop((pbx, linkedid), None)

    def ended(self, pbx: str, linkedid: str) -> None:
        self._calls.pop((pbx, linkedid), None)

    def due(self, now: float) -> list[DialledCall]:
        """Answered calls whose deadline is at or before ``now`` with no disclosure yet."""
        late: list[DialledCall] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, pbx, linkedid = heapq.heappop(self._deadlines)
            call = self._calls.pop((pbx, linkedid), None)
            if call is not None:
                late.append(call)
        return late

    def __len__(self) -> int:
        return len(self._calls)
