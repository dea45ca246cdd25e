"""``ctid run``: AMI links → trackers → tallies → metrics, under one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from ctid import __version__
from ctid.ami.capture import load_capture
from ctid.ami.client import AmiClient, AmiSession
from ctid.ami.codec import Message
from ctid.ami.events import TRACKED_EVENTS
from ctid.ami.server import AmiReplayServer
from ctid.config import PbxSettings, Settings
from ctid.errors import AmiError, ConfigError
from ctid.http import build_app, serve_http
from ctid.metrics.calls import CallMetrics
from ctid.metrics.floor import FloorCollector, PbxCollector, SeatLabels
from ctid.pipeline import EffectSink, PbxPipeline
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker, LiveChannel

log = structlog.get_logger("ctid")

DEMO_USER = "ctid"
DEMO_SECRET = "ctid-demo"


def live_channels(items: list[Message]) -> list[LiveChannel]:
    """``CoreShowChannel`` list items → what the tracker needs to know."""
    out = []
    for item in items:
        if item.name != "CoreShowChannel" or not item.get("Uniqueid"):
            continue
        uniqueid = item.headers["Uniqueid"]
        try:
            state = int(item.get("ChannelState") or 0)
        except ValueError:
            state = 0
        out.append(
            LiveChannel(
                uniqueid=uniqueid,
                linkedid=item.get("Linkedid") or uniqueid,
                name=item.get("Channel") or "",
                state=state,
                bridge_id=item.get("BridgeId") or None,
            )
        )
    return out


class PbxLink:
    """One PBX: an AMI client feeding its own tracker."""

    def __init__(
        self, pbx: PbxSettings, settings: Settings, tallies: DailyTallies, sinks: list[EffectSink]
    ) -> None:
        directory = EndpointDirectory(settings.seat_map(), pbx.trunks)
        self._name = pbx.name
        self.pipeline = PbxPipeline(CallTracker(pbx.name, directory), tallies, sinks)
        self.client = AmiClient(
            name=pbx.name,
            host=pbx.host,
            port=pbx.port,
            username=pbx.username,
            secret=pbx.resolved_secret(),
            auth=pbx.auth,
            keep_events=TRACKED_EVENTS,
            on_messages=self._on_messages,
            on_connected=self._resync,
            on_disconnected=self._on_lost,
            ping_interval=pbx.ping_interval,
            action_timeout=pbx.action_timeout,
        )
        self.clock_offset = 0.0
        """Local time minus PBX time, from the newest event; maps wall clock to PBX clock."""

    # PbxStatus, for the health metrics
    @property
    def name(self) -> str:
        return self._name

    @property
    def connected(self) -> bool:
        return self.client.connected

    @property
    def reconnects(self) -> int:
        return self.client.reconnects

    @property
    def frames(self) -> int:
        return self.client.frames

    @property
    def events_applied(self) -> int:
        return self.pipeline.events_applied

    def pbx_now(self, local_now: float) -> float:
        return local_now - self.clock_offset

    def _on_messages(self, batch: list[Message], received_at: float) -> None:
        # Events without a Timestamp (FullyBooted) get the receive time on the PBX's clock.
        self.pipeline.on_messages(batch, received_at - self.clock_offset)
        last = self.pipeline.tracker.last_ts
        if last:
            self.clock_offset = received_at - last

    def _on_lost(self, last_frame_at: float | None) -> None:
        self.pipeline.connection_lost(last_frame_at)
        log.warning("pbx_gap_started", pbx=self.name, at=self.pipeline.tracker.lost_at)

    async def _resync(self, session: AmiSession) -> None:
        at = self.pipeline.tracker.last_ts or self.pbx_now(time.time())
        try:
            items = await session.send_list_action("CoreShowChannels", {})
        except AmiError as err:
            log.warning("resync_failed", pbx=self.name, error=str(err))
            return
        live = live_channels(items)
        self.pipeline.resynced(at, live)
        log.info("resynced", pbx=self.name, live_channels=len(live))


def bundled_demo_capture() -> Path:
    resource = resources.files("ctid") / "demo" / "mixed_busy_period.ami.gz"
    return Path(str(resource))


@contextlib.asynccontextmanager
async def demo_pbx(settings: Settings) -> AsyncIterator[PbxSettings]:
    """A local AMI server replaying a capture live, for running ctid without a PBX."""
    capture = settings.demo.capture or bundled_demo_capture()
    if not capture.exists():
        raise ConfigError(f"demo.capture: {capture} does not exist")
    recorded = await asyncio.to_thread(load_capture, capture)
    server = AmiReplayServer(
        recorded,
        username=DEMO_USER,
        secret=DEMO_SECRET,
        speed=settings.demo.speed,
        loop=settings.demo.loop,
        retime=True,
    )
    async with server:
        log.info(
            "demo_pbx_started", capture=capture.name, port=server.port, speed=settings.demo.speed
        )
        yield PbxSettings(
            name="demo",
            port=server.port,
            username=DEMO_USER,
            secret=SecretStr(DEMO_SECRET),
            auth="md5",
        )


class Floor:
    """Everything that lives for the daemon's lifetime."""

    def __init__(self, settings: Settings, pbxs: list[PbxSettings]) -> None:
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=True)
        self.tallies = DailyTallies(settings.site.tz, settings.site.effective_call_seconds)
        teams = {seat.id: seat.team for seat in settings.seats}
        sinks: list[EffectSink] = [CallMetrics(self.registry, settings.site.name, teams)]
        self.links = [PbxLink(pbx, settings, self.tallies, sinks) for pbx in pbxs]
        seats = {seat.id: SeatLabels(seat.team, seat.name) for seat in settings.seats}
        self.registry.register(
            FloorCollector(
                settings.site.name,
                seats,
                self.tallies,
                [self._live_for(link) for link in self.links],
                time.time,
            )
        )
        self.registry.register(PbxCollector(lambda: self.links))
        build_info = {"version": __version__}
        self.registry.register(_BuildInfo(build_info))

    @staticmethod
    def _live_for(link: PbxLink) -> Any:
        return lambda now: link.pipeline.tracker.open_seconds(link.pbx_now(now))

    def health(self) -> tuple[bool, dict[str, Any]]:
        pbxs = {
            link.name: {
                "connected": link.connected,
                "reconnects": link.reconnects,
                "frames": link.frames,
                "open_calls": len(link.pipeline.tracker.calls),
            }
            for link in self.links
        }
        healthy = all(link.connected for link in self.links)
        return healthy, {"status": "ok" if healthy else "degraded", "pbx": pbxs}


class _BuildInfo:
    def __init__(self, labels: dict[str, str]) -> None:
        self._labels = labels

    def collect(self) -> Any:
        from prometheus_client.core import InfoMetricFamily

        yield InfoMetricFamily("ctid_build", "ctid build information", value=self._labels)


class _StopRequested(Exception):  # noqa: N818 - a signal, not an error
    pass


async def _wait_for_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    raise _StopRequested


async def run_daemon(
    settings: Settings,
    *,
    handle_signals: bool = True,
    on_ready: Callable[[Floor, int | None], None] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or cancellation); ``on_ready`` gets the floor and HTTP port."""
    async with contextlib.AsyncExitStack() as stack:
        pbxs = list(settings.pbx)
        if not pbxs:
            pbxs = [await stack.enter_async_context(demo_pbx(settings))]
        floor = Floor(settings, pbxs)
        port: int | None = None
        if settings.http.enabled:
            app = build_app(floor.registry, floor.health)
            port = await stack.enter_async_context(
                serve_http(app, settings.http.host, settings.http.port)
            )
            log.info("http_listening", url=f"http://{settings.http.host}:{port}/metrics")
        if on_ready is not None:
            on_ready(floor, port)
        try:
            async with asyncio.TaskGroup() as tg:
                for link in floor.links:
                    tg.create_task(link.client.run(), name=f"ami-{link.name}")
                if handle_signals:
                    tg.create_task(_wait_for_signal(), name="signals")
        except* _StopRequested:
            log.info("stopping")
