"""Wakes the quota engine at its checkpoints and hands the due events to a callback."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Protocol

from ctid.policy.engine import QuotaEngine, QuotaEvent

MAX_SLEEP_SECONDS = 3600.0
"""asyncio sleeps on the monotonic clock; waking at least hourly re-reads the wall clock, so an
NTP step or a suspended host delays a checkpoint by at most this much."""


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class QuotaScheduler:
    def __init__(
        self,
        engine: QuotaEngine,
        clock: Clock,
        on_events: Callable[[list[QuotaEvent]], Awaitable[None]],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.on_events = on_events
        self._sleep = sleep

    async def run(self) -> None:
        """Until cancelled: sleep to the next checkpoint, then deliver what is due."""
        while True:
            await self.run_once()

    async def run_once(self) -> None:
        wait = (self.engine.next_checkpoint() - self.clock.now()).total_seconds()
        if wait > 0:
            await self._sleep(min(wait, MAX_SLEEP_SECONDS))
        events = self.engine.advance(self.clock.now())
        if events:
            # Awaited, not spawned: a slow report write delays the next check, never piles up.
            await self.on_events(events)
