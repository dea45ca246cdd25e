"""The baseline for :mod:`bench.subject`: panoramisk's ``Manager`` feeding ctid's tracker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from bench.subject import HOST, RUN_TIMEOUT_S, Job, Outcome, Recorder, build_floor
from ctid.ami.events import _NORMALISERS, TRACKED_EVENTS, AmiEvent, event_time
from ctid.tracker.model import Effect
from ctid.tracker.tracker import CallTracker


async def run_panoramisk(job: Job, conn: Connection) -> Outcome:
    """The same floor fed by panoramisk's ``Manager`` instead of ctid's client and codec.

    panoramisk has no event filter before parsing; its dispatcher calls us for the tracked
    event names.  Its messages go straight to ctid's normalisers (they only look headers up,
    which panoramisk's case-insensitive dict supports), the lightest adapter there is.
    """
    from panoramisk import Manager

    recorder = Recorder()
    pipeline = build_floor(job.seats, recorder).pipeline
    tracker, tallies, sinks = pipeline.tracker, pipeline.tallies, pipeline.sinks
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[float] = loop.create_future()
    frames = applied = 0

    def on_event(_manager: Any, message: Any) -> None:
        nonlocal frames, applied
        frames += 1
        received = time.time()
        recorder.received_at = received
        name = message.event
        if name == "UserEvent" and message.get("UserEvent") == "BenchDone":
            finished.set_result(time.perf_counter())
            return
        effects = _apply(tracker, name, message, received)
        if effects is None:
            return
        applied += 1
        for effect in effects:
            tallies.apply(effect)
            for sink in sinks:
                sink(effect)

    manager = Manager(
        host=HOST, port=job.port, username="ctid", secret="ctidsecret", loop=loop, ping_delay=3600
    )
    for name in sorted(TRACKED_EVENTS):
        manager.register_event(name, on_event)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        await manager.connect()
        async with asyncio.timeout(RUN_TIMEOUT_S):
            end = await finished
    finally:
        cpu = time.process_time() - cpu
        manager.close()
        await asyncio.sleep(0)
    outcome = recorder.outcome
    outcome.frames, outcome.seconds, outcome.cpu_seconds = frames, end - start, cpu
    outcome.events_applied = applied
    return outcome


def _apply(tracker: CallTracker, name: str, headers: Any, received: float) -> list[Effect] | None:
    """What ``PbxPipeline.on_messages`` does per message; None when nothing was applied."""
    build: Callable[[Any, float], AmiEvent] | None = _NORMALISERS.get(name)
    if build is None:
        return None
    try:
        event = build(headers, event_time(headers, received))
    except KeyError:
        return None
    return tracker.apply(event)
