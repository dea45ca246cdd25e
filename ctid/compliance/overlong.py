"""Over-long calls: a warning at ``warn`` seconds after the answer, optionally a hang-up later.

Answered customer calls wait in a heap of deadlines until they end; :meth:`OverlongWatch.due`
returns the thresholds passed by ``now`` (a tiny timer calls it, like the disclosure rule's).
Each call crosses each threshold at most once.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from ctid.compliance.disclosure import DialledCall


@dataclass(frozen=True, slots=True)
class Overdue:
    call: DialledCall
    at: float
    """The moment the threshold was crossed: answer + threshold."""
    seconds: float
    hangup: bool
    """The hang-up threshold (else the warning one)."""


class OverlongWatch:
    def __init__(self, warn: float, hangup: float | None) -> None:
        self._warn, self._hangup = warn, hangup
        self._calls: dict[tuple[str, str], DialledCall] = {}
        self._deadlines: list[tuple[float, bool, str, str]] = []

    def answered(self, call: DialledCall, ts: float) -> None:
        """A seat answered (or was answered by) a customer call.

        The first answer starts the clock; a later one (a transfer to another seat) only
        moves the call to that seat, whose channel a hang-up would then act on.
        """
        key = (call.pbx, call.linkedid)
        known = self._calls.get(key)
        if known is not None:
            known.seat, known.caller_uniqueid = call.seat, call.caller_uniqueid
            return
        call.answered_at = ts
        self._calls[key] = call
        heapq.heappush(self._deadlines, (ts + self._warn, False, call.pbx, call.linkedid))
        if self._hangup is not None:
            heapq.heappush(self._deadlines, (ts + self._hangup, True, call.pbx, call.linkedid))

    def ended(self, pbx: str, linkedid: str) -> None:
        self._calls.pop((pbx, linkedid), None)

    def due(self, now: float) -> list[Overdue]:
        """Thresholds at or before ``now`` of calls still going."""
        out: list[Overdue] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            at, hangup, pbx, linkedid = heapq.heappop(self._deadlines)
            call = self._calls.get((pbx, linkedid))
            if call is None:
                continue  # ended before this threshold
            # The call stays known until it ends: a transfer after the last threshold must
            # not start its clock again.
            limit = self._hangup if hangup and self._hangup is not None else self._warn
            out.append(Overdue(call, at, limit, hangup))
        return out

    def __len__(self) -> int:
        return len(self._calls)
