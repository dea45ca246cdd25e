"""The process under test: ctid's pipeline (or panoramisk + ctid's tracker) reading AMI over TCP.

One spawned process per run, so each starts clean and its CPU time is its own.  It builds a
floor like ``ctid.daemon.Floor`` does (tracker, daily tallies, call metrics, the floor and PBX
collectors on their own registry, ``/metrics`` served by ``ctid.http``), connects to the load
generator with the real ``AmiClient``, and reports how long the stream took, the CPU it cost,
and when each ``OutboundDial`` decision was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from bench.remap import seat_id
from ctid.ami import client as ami_client
from ctid.ami.client import AmiClient
from ctid.ami.codec import Message
from ctid.ami.events import TRACKED_EVENTS
from ctid.http import build_app, serve_http
from ctid.interpreter import favour_the_event_loop
from ctid.metrics.calls import CallMetrics
from ctid.metrics.exposition import Exposition
from ctid.metrics.floor import FloorCollector, PbxCollector, SeatLabels
from ctid.pipeline import EffectSink, PbxPipeline
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import CallEnded, Effect, OutboundDial
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker

HOST = "127.0.0.1"
SITE = "bench"
SEATS_PER_TEAM = 100
RUN_TIMEOUT_S = 300.0


def floor_seats(count: int) -> dict[str, SeatLabels]:
    """``count`` configured seats, named as :mod:`bench.remap` names the copies' seats."""
    ids = (seat_id(k, 1000 + n) for k in range(count // 10 + 1) for n in range(1, 11))
    return {
        sid: SeatLabels(f"team{i // SEATS_PER_TEAM:03d}", f"Agent {sid}")
        for i, sid in zip(range(count), ids, strict=False)
    }


@dataclass(frozen=True, slots=True)
class Job:
    """One run: which client, which seats on the floor, whether to serve ``/metrics``."""

    port: int
    client: str  # "ctid", "ctid_before" (old codec), "panoramisk" or "bare…" (subject_bare)
    seats: int
    http: bool = False
    renderer: str = "stock"  # "stock": prometheus_client; "fast": ctid.metrics.exposition


@dataclass(slots=True)
class Outcome:
    frames: int = 0
    seconds: float = 0.0  # connect to the last frame's decision
    cpu_seconds: float = 0.0
    calls_ended: int = 0
    events_applied: int = 0
    decisions: list[tuple[str, float, float, float]] = field(default_factory=list)
    """(linkedid, ts, time.monotonic() at decision, seconds since its read returned)."""
    reads: list[tuple[int, float]] = field(default_factory=list)
    """(index of the last stream frame a read delivered, time.monotonic() once applied)."""
    max_rss_kib: int = 0


class _Link:
    """A :class:`ctid.metrics.floor.PbxStatus` for the health metrics."""

    def __init__(self, client: AmiClient, pipeline: PbxPipeline) -> None:
        self._client, self._pipeline = client, pipeline

    @property
    def name(self) -> str:
        return self._client.name

    @property
    def connected(self) -> bool:
        return self._client.connected

    @property
    def reconnects(self) -> int:
        return self._client.reconnects

    @property
    def frames(self) -> int:
        return self._client.frames

    @property
    def events_applied(self) -> int:
        return self._pipeline.events_applied


class Recorder:
    """An effect sink noting each decision's time (unless ``keep`` is off); counts ended calls."""

    def __init__(self, *, keep: bool = True) -> None:
        self.outcome = Outcome()
        self.received_at = 0.0  # time.time() when the batch being applied was read
        self._keep = keep

    def __call__(self, effect: Effect) -> None:
        if isinstance(effect, OutboundDial) and self._keep:
            now = time.monotonic()
            lag = time.time() - self.received_at
            self.outcome.decisions.append((effect.linkedid, effect.ts, now, lag))
        elif isinstance(effect, CallEnded):
            self.outcome.calls_ended += 1


Render = Callable[[str], tuple[bytes, str]]


@dataclass(frozen=True, slots=True)
class Floor:
    pipeline: PbxPipeline
    registry: CollectorRegistry
    """Everything but the per-seat families and the call metrics (the caller adds the PBX
    link)."""
    seats: FloorCollector
    calls: CallMetrics
    """Rendered by the fast exposition, as the daemon does (``CallMetrics(None, ...)``)."""


def build_floor(seats: int, recorder: Recorder) -> Floor:
    """A floor as ``ctid.daemon.Floor`` builds one, with the floor collector kept apart."""
    registry = CollectorRegistry(auto_describe=True)
    tallies = DailyTallies(ZoneInfo("UTC"))
    labels = floor_seats(seats)
    teams = {sid: seat.team for sid, seat in labels.items()}
    calls = CallMetrics(None, SITE, teams)
    sinks: list[EffectSink] = [calls, recorder]
    pipeline = PbxPipeline(CallTracker("bench", EndpointDirectory()), tallies, sinks)
    live = [pipeline.tracker.open_seconds]
    seats_collector = FloorCollector(SITE, labels, tallies, live, time.time)
    return Floor(pipeline, registry, seats_collector, calls)


def stock_renderer(floor: Floor) -> Render:
    """``/metrics`` as prometheus_client renders it: the floor collector and the call metrics
    in the registry."""
    floor.registry.register(floor.seats)
    floor.registry.register(floor.calls)

    def render(accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        return encoder(floor.registry), content_type

    return render


def fast_renderer(floor: Floor) -> Exposition:
    """``/metrics`` through ``ctid.metrics.exposition``, as the daemon serves it."""
    return Exposition(floor.registry, [floor.seats, floor.calls])


def run(job: Job, conn: Connection) -> None:
    """Child process entry point: one run, its :class:`Outcome` sent back on ``conn``."""
    if job.client == "ctid_before":
        from bench import codec_before

        # The client builds its codec by this module-level name: swap in the old one.
        setattr(ami_client, "AmiCodec", codec_before.AmiCodec)  # noqa: B010
    if job.client == "panoramisk":
        from bench.subject_panoramisk import run_panoramisk as runner
    elif job.client.startswith("bare"):
        from bench.subject_bare import run_bare as runner
    else:
        runner = _ctid
    favour_the_event_loop()  # as `ctid run` does (the baselines get it too: same footing)
    outcome = asyncio.run(runner(job, conn))
    outcome.max_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send(outcome)


async def _ctid(job: Job, conn: Connection) -> Outcome:
    recorder = Recorder()
    floor = build_floor(job.seats, recorder)
    pipeline = floor.pipeline
    done = asyncio.Event()
    end = 0.0

    def on_messages(batch: list[Message], received_at: float) -> None:
        nonlocal end
        recorder.received_at = received_at
        pipeline.on_messages(batch, received_at)
        if job.http:  # paced runs: frames counted so far, less the login response
            recorder.outcome.reads.append((client.frames - 2, time.monotonic()))
        last = batch[-1]
        if last.name == "UserEvent" and last.get("UserEvent") == "BenchDone":
            end = time.perf_counter()
            done.set()

    client = AmiClient(
        name="bench",
        host=HOST,
        port=job.port,
        username="ctid",
        secret="ctidsecret",
        keep_events=TRACKED_EVENTS,
        on_messages=on_messages,
        ping_interval=3600.0,
    )
    floor.registry.register(PbxCollector(lambda: [_Link(client, pipeline)]))
    async with contextlib.AsyncExitStack() as stack:
        if job.http:
            fast = fast_renderer(floor) if job.renderer == "fast" else None
            app = _app(floor, fast)
            port = await stack.enter_async_context(serve_http(app, HOST, 0))
            conn.send(port)
        gc.freeze()  # start-up objects out of the collector's reach, as `ctid run` does
        start, cpu = time.perf_counter(), time.process_time()
        task = asyncio.create_task(client.run())
        try:
            async with asyncio.timeout(RUN_TIMEOUT_S):
                await done.wait()
        finally:
            cpu = time.process_time() - cpu
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    outcome = recorder.outcome
    outcome.frames, outcome.seconds, outcome.cpu_seconds = client.frames, end - start, cpu
    outcome.events_applied = pipeline.events_applied
    return outcome


def _app(floor: Floor, fast: Exposition | None) -> web.Application:
    def health() -> tuple[bool, dict[str, Any]]:
        return True, {"status": "ok"}

    if fast is None:
        stock_renderer(floor)
        return build_app(floor.registry, health)
    return build_app(floor.registry, health, fast.render_async)
