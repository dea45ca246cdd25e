"""ctid with the live floor wired in (seat states, fast /metrics, health), for end-to-end tests.

This is the wiring proposed for ``ctid.daemon`` (see docs/metrics.md, "Wiring"), built from
the same public pieces — demo PBX, AMI client, pipeline, :class:`ctid.live.floor.LiveFloor`,
the HTTP app — so the dashboards and rules can be checked against a real scrape before the
daemon adopts it.  No resync and no signals: a test owns the lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from ctid.ami.client import AmiClient
from ctid.ami.codec import Message
from ctid.config import PbxSettings, Settings
from ctid.daemon import demo_pbx
from ctid.http import build_app, serve_http
from ctid.live.floor import LIVE_EVENTS, LiveFloor
from ctid.metrics.calls import CallMetrics
from ctid.metrics.floor import PbxCollector, SeatLabels
from ctid.metrics.health import GapMeter
from ctid.pipeline import EffectSink, PbxPipeline
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker


@dataclass
class Link:
    """A PBX link as the daemon's ``PbxLink`` has it, plus the live-floor hook."""

    name: str
    pipeline: PbxPipeline
    live: LiveFloor
    client: AmiClient | None = None
    clock_offset: float = 0.0
    gaps: GapMeter | None = None

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    @property
    def reconnects(self) -> int:
        return self.client.reconnects if self.client else 0

    @property
    def frames(self) -> int:
        return self.client.frames if self.client else 0

    @property
    def events_applied(self) -> int:
        return self.pipeline.events_applied

    @property
    def gap_seconds(self) -> float:
        return self.gaps.total if self.gaps else 0.0

    def pbx_now(self, local_now: float) -> float:
        return local_now - self.clock_offset

    def on_messages(self, batch: list[Message], received_at: float) -> None:
        self.pipeline.on_messages(batch, received_at - self.clock_offset)
        if self.pipeline.tracker.last_ts:
            self.clock_offset = received_at - self.pipeline.tracker.last_ts
        self.live.on_batch(self, batch, received_at)


def build(settings: Settings, pbx: PbxSettings) -> tuple[CollectorRegistry, LiveFloor, Link]:
    registry = CollectorRegistry(auto_describe=True)
    tallies = DailyTallies(settings.site.tz, settings.site.effective_call_seconds)
    seats = {seat.id: SeatLabels(seat.team, seat.name) for seat in settings.seats}
    directory = EndpointDirectory(settings.seat_map(), pbx.trunks)
    links: list[Link] = []
    live = LiveFloor(
        site=settings.site.name,
        seats=seats,
        tallies=tallies,
        registry=registry,
        links=lambda: links,
        directory=directory,
        wrap_up_seconds=10.0,
    )
    teams = {seat.id: seat.team for seat in settings.seats}
    sinks: list[EffectSink] = [CallMetrics(registry, settings.site.name, teams), *live.sinks]
    pipeline = PbxPipeline(CallTracker(pbx.name, directory), tallies, sinks)
    link = Link(pbx.name, pipeline, live, gaps=GapMeter())
    link.client = AmiClient(
        name=pbx.name,
        host=pbx.host,
        port=pbx.port,
        username=pbx.username,
        secret=pbx.resolved_secret(),
        auth=pbx.auth,
        keep_events=LIVE_EVENTS,
        on_messages=link.on_messages,
        on_disconnected=lambda _at: link.gaps.down() if link.gaps else None,
    )
    links.append(link)
    registry.register(PbxCollector(lambda: links))
    return registry, live, link


@contextlib.asynccontextmanager
async def running_live_ctid(settings: Settings) -> AsyncIterator[tuple[LiveFloor, int]]:
    """Serve /metrics on ``settings.http`` until the context exits; yields (floor, port)."""
    async with contextlib.AsyncExitStack() as stack:
        pbx = await stack.enter_async_context(demo_pbx(settings))
        registry, live, link = build(settings, pbx)
        app = build_app(registry, lambda: (link.connected, {}), live.exposition.render)
        port = await stack.enter_async_context(
            serve_http(app, settings.http.host, settings.http.port)
        )
        assert link.client is not None
        tasks = [asyncio.create_task(link.client.run()), asyncio.create_task(live.run())]
        try:
            deadline = time.monotonic() + 10
            while not link.connected and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            yield live, port
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
