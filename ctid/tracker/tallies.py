"""Per-seat daily tallies in the site's time zone.

Counts (calls, answered, effective, ...) go to the local day the call started; talk and hold
seconds are split at local midnight, so a call across midnight feeds both days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, fields
from zoneinfo import ZoneInfo

from ctid.tracker.model import Call, CallEnded, Direction, Effect, InternalCallPlaced, InternalTalk

DEFAULT_EFFECTIVE_SECONDS = 30.0
LIVE_KEEP_DAYS = 2
"""Days the daemon keeps: today, and yesterday for a call or a scrape just after midnight."""


@dataclass(slots=True)
class SeatTally:
    calls: int = 0
    outbound: int = 0
    inbound: int = 0
    transfers_in: int = 0
    answered: int = 0
    effective: int = 0
    talk_seconds: float = 0.0
    hold_seconds: float = 0.0
    faxes: int = 0
    internal_calls: int = 0
    internal_talk_seconds: float = 0.0

    def add(self, other: SeatTally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def split_by_local_day(start: float, end: float, tz: ZoneInfo) -> Iterator[tuple[dt.date, float]]:
    """Seconds of ``[start, end)`` that fall on each local calendar day."""
    cursor = start
    while cursor < end:
        local = dt.datetime.fromtimestamp(cursor, tz)
        next_midnight = dt.datetime.combine(
            local.date() + dt.timedelta(days=1), dt.time(), tzinfo=tz
        ).timestamp()
        stop = min(end, next_midnight)
        yield local.date(), stop - cursor
        cursor = stop


class DailyTallies:
    def __init__(
        self,
        tz: ZoneInfo,
        effective_seconds: float = DEFAULT_EFFECTIVE_SECONDS,
        *,
        keep_days: int | None = None,
    ) -> None:
        self.tz = tz
        self.effective_seconds = effective_seconds
        self.keep_days = keep_days
        """The newest days kept when a new one starts; ``None`` keeps them all (a replay or
        report over a period).  The daemon reads only today, so it keeps a few: one day's
        tallies per seat, every day, would otherwise stay for the daemon's lifetime."""
        self.days: dict[dt.date, dict[str, SeatTally]] = {}

    def local_day(self, ts: float) -> dt.date:
        return dt.datetime.fromtimestamp(ts, self.tz).date()

    def tally(self, day: dt.date, seat: str) -> SeatTally:
        seats = self.days.get(day)
        if seats is None:
            seats = self.days[day] = {}
            if self.keep_days is not None and len(self.days) > self.keep_days:
                for old in sorted(self.days)[: len(self.days) - self.keep_days]:
                    del self.days[old]
        return seats.setdefault(seat, SeatTally())

    def apply(self, effect: Effect) -> None:
        if isinstance(effect, CallEnded):
            self.add_call(effect.call)
        elif isinstance(effect, InternalTalk):
            for day, seconds in split_by_local_day(effect.start, effect.end, self.tz):
                self.tally(day, effect.seat).internal_talk_seconds += seconds
        elif isinstance(effect, InternalCallPlaced):
            self.tally(self.local_day(effect.ts), effect.seat).internal_calls += 1

    def add_call(self, call: Call) -> None:
        day = self.local_day(call.started_at)
        seats = call.seats_talked()
        if call.placed_by is not None:
            placer = self.tally(day, call.placed_by)
            placer.calls += 1
            placer.outbound += 1
            if call.fax:
                placer.faxes += 1
        for seat in seats:
            tally = self.tally(day, seat)
            if call.direction is Direction.INBOUND:
                tally.calls += 1
                tally.inbound += 1
            elif seat != call.placed_by:
                tally.calls += 1
                tally.transfers_in += 1
            tally.answered += 1
        self._add_seconds(call)

    def _add_seconds(self, call: Call) -> None:
        talk_per_seat: dict[str, float] = {}
        for segment in call.segments.values():
            talk_per_seat[segment.seat] = talk_per_seat.get(segment.seat, 0.0) + (
                segment.talk_seconds
            )
            for start, end in segment.talk_intervals:
                for day, seconds in split_by_local_day(start, end, self.tz):
                    self.tally(day, segment.seat).talk_seconds += seconds
            for start, end in segment.hold_intervals:
                for day, seconds in split_by_local_day(start, end, self.tz):
                    self.tally(day, segment.seat).hold_seconds += seconds
        if call.fax:
            return
        day = self.local_day(call.started_at)
        for seat, talk in talk_per_seat.items():
            if talk >= self.effective_seconds:
                self.tally(day, seat).effective += 1

    def totals(self) -> dict[str, SeatTally]:
        """All days summed, per seat."""
        out: dict[str, SeatTally] = {}
        for seats in self.days.values():
            for seat, tally in seats.items():
                out.setdefault(seat, SeatTally()).add(tally)
        return out
