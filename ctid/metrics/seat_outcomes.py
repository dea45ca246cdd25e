"""Outbound calls per seat and local day, by outcome: an effect sink the daily tallies lack.

Counted exactly as :class:`ctid.tracker.tallies.DailyTallies` counts ``outbound`` (the dialling
seat, the local day the call started), so the outcomes of a seat sum to its outbound calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from ctid.tracker.model import CallEnded, Effect

KEEP_DAYS = 2
"""Today and yesterday: a scrape just after midnight may still ask for yesterday."""

Outcomes = tuple[tuple[str, float], ...]


class SeatOutcomes:
    def __init__(self, local_day: Callable[[float], dt.date]) -> None:
        self._local_day = local_day
        self._days: dict[dt.date, dict[str, Outcomes]] = {}

    def __call__(self, effect: Effect) -> None:
        if not isinstance(effect, CallEnded) or effect.call.placed_by is None:
            return
        call = effect.call
        seat = effect.call.placed_by
        day = self._local_day(call.started_at)
        seats = self._days.get(day)
        if seats is None:
            seats = self._days[day] = {}
            for old in sorted(self._days)[:-KEEP_DAYS]:
                del self._days[old]
        outcome = str(call.outcome) if call.outcome is not None else "unknown"
        counts = dict(seats.get(seat, ()))
        counts[outcome] = counts.get(outcome, 0.0) + 1.0
        # Kept as a sorted tuple, built here (once per call) rather than at every scrape: the
        # exposition compares these values to decide what to re-render.
        seats[seat] = tuple(sorted(counts.items()))

    def day(self, day: dt.date) -> Mapping[str, Outcomes]:
        """Seat → ((outcome, calls), ...) for ``day``; empty for a day with no outbound call."""
        return self._days.get(day, {})
