"""``ctid run``: the demo PBX, the floor, HTTP and signals, under one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path

import structlog
from pydantic import SecretStr

from ctid.ami.capture import load_capture
from ctid.ami.server import AmiReplayServer
from ctid.api import add_api_routes
from ctid.config import PbxSettings, Settings
from ctid.errors import ConfigError
from ctid.floor import Floor
from ctid.http import build_app, serve_http
from ctid.pbx_link import live_channels
from ctid.store.directory import SeatInfo
from ctid.store.runtime import Store, open_store
from ctid.tracker.tallies import DailyTallies

__all__ = ["Floor", "live_channels", "run_daemon"]

log = structlog.get_logger("ctid")

DEMO_USER = "ctid"
DEMO_SECRET = "ctid-demo"


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


class _StopRequested(Exception):  # noqa: N818 - a signal, not an error
    pass


def _nothing_to_reload() -> None:
    log.info("sighup_ignored", reason="no policy file to reload")


async def _wait_for_signal(on_reload: Callable[[], None] | None = None) -> None:
    """Until SIGINT/SIGTERM; SIGHUP calls ``on_reload`` (the policy reload) when given."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = [signal.SIGINT, signal.SIGTERM]
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    # SIGHUP is always caught: its default action would end the daemon for good.
    loop.add_signal_handler(signal.SIGHUP, on_reload or _nothing_to_reload)
    handled.append(signal.SIGHUP)
    try:
        await stop.wait()
    finally:
        for sig in handled:
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
        tallies = DailyTallies(settings.site.tz, settings.site.effective_call_seconds)
        store: Store | None = None
        if settings.store.enabled:
            seats = [SeatInfo(s.id, s.name, s.team, s.kind, s.hire_date) for s in settings.seats]
            store = await stack.enter_async_context(
                open_store(settings.store, tallies, seats=seats, pbxs=[p.name for p in pbxs])
            )
        floor = Floor(settings, pbxs, tallies, store)
        if floor.compliance is not None:
            # Opt-out journal and list imports: blocking reads, done once before any call.
            await asyncio.to_thread(floor.compliance.load)
        port: int | None = None
        if settings.http.enabled:
            app = build_app(floor.registry, floor.health, floor.live.exposition.render)
            add_api_routes(app, floor, token=settings.http.resolved_api_token())
            port = await stack.enter_async_context(
                serve_http(app, settings.http.host, settings.http.port)
            )
            log.info("http_listening", url=f"http://{settings.http.host}:{port}/metrics")
        if on_ready is not None:
            on_ready(floor, port)
        try:
            async with asyncio.TaskGroup() as tg:
                for name, coroutine in floor.background_tasks():
                    tg.create_task(coroutine, name=name)
                if handle_signals:
                    reloader = floor.policy_reloader
                    on_reload = reloader.request if reloader is not None else None
                    tg.create_task(_wait_for_signal(on_reload), name="signals")
        except* _StopRequested:
            log.info("stopping")
