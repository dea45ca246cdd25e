"""Quota gaming: answered calls shaped to count as effective without being real conversations.

Judged when a call ends, from its per-seat talk:

* **burst** — a seat's answered calls whose talk lands just over the effective-call threshold
  (``effective <= talk < effective + margin``): ``burst_calls`` of them within
  ``burst_seconds``;
* **redial** — one seat's answered calls to one number: ``redial_answered`` of them within
  ``redial_seconds``.

Windows are rolling and half-open like the frequency caps'.  One finding per *episode*: a key
(seat, or seat and number) is reported when its count reaches the threshold, and again only
after a later qualifying call found the count back under it.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from ctid.compliance.frequency import RollingCounter
from ctid.tracker.model import Call, Direction, Outcome


@dataclass(frozen=True, slots=True)
class Gaming:
    seat: str
    reason: str
    number: str = ""
    """E.164 of the redialled number (the guard masks it); empty for a burst."""


class Episodes:
    """Qualifying events per key in a rolling window, reported once per crossing."""

    def __init__(self, threshold: int, span: float) -> None:
        self._threshold = threshold
        self._counter = RollingCounter(span)
        self._open: set[Hashable] = set()

    def record(self, key: Hashable, now: float) -> int | None:
        """Count one event; the count when this one starts an episode, else None."""
        count = self._counter.count(key, now) + 1
        self._counter.add(key, now)
        if count < self._threshold:
            self._open.discard(key)
            return None
        if key in self._open:
            return None
        self._open.add(key)
        return count


def talk_per_seat(call: Call) -> dict[str, float]:
    """Talk seconds of each seat in the call (a seat may have several segments)."""
    talk: dict[str, float] = {}
    for segment in call.segments.values():
        talk[segment.seat] = talk.get(segment.seat, 0.0) + segment.talk_seconds
    return talk


class QuotaGaming:
    def __init__(
        self,
        effective: float,
        margin: float,
        burst: tuple[int, float],
        redial: tuple[int, float],
    ) -> None:
        """``burst`` and ``redial`` are (calls, window seconds)."""
        self._low, self._high = effective, effective + margin
        self._bursts = Episodes(*burst)
        self._redials = Episodes(*redial)
        self._burst_text = f"within {burst[1] / 60:g} min"
        self._redial_text = f"within {redial[1] / 3600:g} h"

    def just_over(self, talk: float) -> bool:
        return self._low <= talk < self._high

    def judge(self, call: Call, e164: str) -> list[Gaming]:
        """Findings of one ended call; ``e164`` is its normalised remote number."""
        if call.fax or call.outcome is not Outcome.ANSWERED:
            return []
        ended = call.ended_at if call.ended_at is not None else call.started_at
        found: list[Gaming] = []
        talk = talk_per_seat(call)
        for seat, seconds in talk.items():
            if self.just_over(seconds) and (count := self._bursts.record(seat, ended)):
                found.append(Gaming(seat, self._burst_reason(count)))
        dialler = call.placed_by
        # Redials count for the seat that dialled, when it talked (an answered call of its own).
        if (
            call.direction is not Direction.OUTBOUND
            or dialler is None
            or dialler not in talk
            or not e164
        ):
            return found
        if count := self._redials.record((dialler, e164), ended):
            reason = f"{count} answered calls to one number {self._redial_text}"
            found.append(Gaming(dialler, reason, e164))
        return found

    def _burst_reason(self, count: int) -> str:
        return (
            f"{count} answered calls with talk just over the effective threshold "
            f"({self._low:g}-{self._high:g} s) {self._burst_text}"
        )
