"""``seat/<seat>/today`` — retained: a seat's figures for the local day and, with a quota policy,
each quota's target, actual, attainment and status.

The figures are the daily tallies, i.e. finished calls: a call in progress counts once it ends
(/metrics adds the open seconds; the feed does not, or it would republish every talking seat on
every tick).  Work per tick follows the seats that changed, not the floor's size: the effect
sink marks the seats of each finished call, new adjustments mark their seat, a new day marks
every seat once.  Pace status also moves with the clock alone, so with quotas a slice of the
seats is re-evaluated each tick, every seat once per :data:`QUOTA_SWEEP_SECONDS`.  A seat is
published only when its body differs from the last one published, at most once per tick.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ctid.mqtt.feed import Offer, topic_level
from ctid.tracker.model import CallEnded, Effect
from ctid.tracker.tallies import DailyTallies, SeatTally

if TYPE_CHECKING:
    from ctid.policy.engine import QuotaEngine

QUOTA_SWEEP_SECONDS = 60.0
"""Every seat's quota status is looked at least this often, whether or not it worked."""


@dataclass(frozen=True, slots=True)
class QuotaFigures:
    target: float
    actual: float
    status: str


class TodayQuotas(Protocol):
    """Quota figures per seat (:class:`EngineTodayQuotas`)."""

    def seats(self) -> Iterable[str]:
        """Every seat the policy knows."""
        ...

    def figures(self, seat: str, now: float) -> tuple[str, Mapping[str, QuotaFigures]]:
        """(the seat's status, its quotas today) at ``now``."""
        ...

    def changed_seats(self) -> Iterable[str]:
        """Seats whose targets changed since the last call (new adjustments)."""
        ...


class EngineTodayQuotas:
    def __init__(self, engine: QuotaEngine) -> None:
        self._engine = engine
        self._seen = 0
        """Adjustments already looked at (the history only grows, bar a restore)."""

    def seats(self) -> Iterable[str]:
        return self._engine.seat_ids()

    def figures(self, seat: str, now: float) -> tuple[str, Mapping[str, QuotaFigures]]:
        evaluation = self._engine.evaluate(seat, dt.datetime.fromtimestamp(now, dt.UTC))
        quotas: dict[str, QuotaFigures] = {
            quota: QuotaFigures(progress.target, progress.actual, progress.status)
            for quota, progress in evaluation.quotas.items()
        }
        return evaluation.status, quotas

    def changed_seats(self) -> Iterable[str]:
        history = self._engine.adjustments.history
        if len(history) < self._seen:
            self._seen = 0
        fresh, self._seen = history[self._seen :], len(history)
        return {entry.seat for entry in fresh}


def today_payload(
    seat: str,
    team: str,
    day: dt.date,
    tally: SeatTally,
    quotas: tuple[str, Mapping[str, QuotaFigures]] | None,
) -> dict[str, Any]:
    """The JSON body of ``seat/<seat>/today``; ``quotas`` is None without a quota policy."""
    body: dict[str, Any] = {
        "seat": seat,
        "team": team,
        "day": day.isoformat(),
        "talk_seconds": round(tally.talk_seconds, 3),
        "hold_seconds": round(tally.hold_seconds, 3),
        "calls": tally.calls,
        "outbound": tally.outbound,
        "inbound": tally.inbound,
        "transfers_in": tally.transfers_in,
        "answered": tally.answered,
        "effective": tally.effective,
        "faxes": tally.faxes,
        "quota_status": None,
        "quotas": None,
    }
    if quotas is not None:
        status, figures = quotas
        body["quota_status"] = status
        body["quotas"] = {name: _quota(f) for name, f in figures.items()}
    return body


def _quota(figures: QuotaFigures) -> dict[str, Any]:
    target, actual = figures.target, figures.actual
    return {
        "target": round(target, 2),
        "actual": round(actual, 2),
        "attainment": round(actual / target, 4) if target > 0 else None,
        "status": figures.status,
    }


_NO_CALLS = SeatTally()


class SeatTodayFeed:
    """Effect sink and ticker: retained ``seat/<seat>/today`` for seats whose figures changed."""

    def __init__(
        self,
        publisher: Offer,
        tallies: DailyTallies,
        teams: Mapping[str, str],
        clock: Callable[[], float],
        interval: float = 1.0,
    ) -> None:
        self._publisher = publisher
        self._tallies = tallies
        self._teams = teams
        self._clock = clock
        self._interval = interval
        self.quotas: TodayQuotas | None = None
        """Set by the quota engine's owner; without it ``quotas`` is null."""
        self._day: dt.date | None = None
        self._dirty: set[str] = set()
        self._published: dict[str, dict[str, Any]] = {}
        self._roster: list[str] = []
        self._on_roster: set[str] = set()
        self._sweep_at = 0

    def __call__(self, effect: Effect) -> None:
        if isinstance(effect, CallEnded):
            call = effect.call
            if call.placed_by:
                self.mark(call.placed_by)
            for segment in call.segments.values():
                self.mark(segment.seat)

    def mark(self, seat: str) -> None:
        """Look at ``seat`` on the next tick."""
        self._dirty.add(seat)
        if seat not in self._on_roster:
            self._on_roster.add(seat)
            self._roster.append(seat)

    def republish(self) -> None:
        """After a (re)connect: the broker may have lost retained messages (restart)."""
        self._dirty.update(self._published)
        self._published.clear()

    def publish_changes(self) -> int:
        """Publish the marked seats whose body changed; returns how many were published."""
        now = self._clock()
        day = self._tallies.local_day(now)
        if day != self._day:
            self._day = day
            self._mark_everyone(day)
        quotas = self.quotas
        if quotas is not None:
            for seat in quotas.changed_seats():
                self.mark(seat)
            self._sweep()
        today = self._tallies.days.get(day, {})
        waiting: set[str] = set()
        sent = 0
        for seat in self._dirty:
            figures = quotas.figures(seat, now) if quotas is not None else None
            team = self._teams.get(seat, "default")
            body = today_payload(seat, team, day, today.get(seat, _NO_CALLS), figures)
            if self._published.get(seat) == body:
                continue
            if self._publisher.offer(f"seat/{topic_level(seat)}/today", body, retain=True):
                self._published[seat] = body
                sent += 1
            else:
                waiting.add(seat)  # the queue is full: try again next tick
        self._dirty = waiting
        return sent

    def _mark_everyone(self, day: dt.date) -> None:
        """A new day zeroes every seat (once a day, so the whole floor is fine here)."""
        seats = [*self._teams, *self._tallies.days.get(day, {}), *self._published]
        if self.quotas is not None:
            seats.extend(self.quotas.seats())
        for seat in seats:
            self.mark(seat)

    def _sweep(self) -> None:
        count = len(self._roster)
        if not count:
            return
        share = min(count, math.ceil(count * self._interval / QUOTA_SWEEP_SECONDS))
        for step in range(share):
            self._dirty.add(self._roster[(self._sweep_at + step) % count])
        self._sweep_at = (self._sweep_at + share) % count

    async def run(self) -> None:
        while True:
            self.publish_changes()
            await asyncio.sleep(self._interval)
