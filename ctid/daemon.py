"""``ctid run``: the demo PBX, the floor, HTTP and signals, under one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
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
from ctid.ha.leader import LeaderLock, LockLostError
from ctid.ha.status import RoleCollector, serve_standby, with_role
from ctid.http import build_app, serve_http
from ctid.metrics.compliance import AbandonRateCollector
from ctid.pbx_link import live_channels
from ctid.sdnotify import SystemdNotifier
from ctid.store.directory import SeatInfo, load_places
from ctid.store.engine import store_url
from ctid.store.number_protect import NumberKeys
from ctid.store.purge import purge_daily
from ctid.store.runtime import Store, open_store
from ctid.tracker.tallies import LIVE_KEEP_DAYS, DailyTallies

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


def _reload_as_standby() -> None:
    log.info("sighup_ignored", reason="standby: nothing loaded to reload")


async def _unless_stopped(
    work: Awaitable[None], handle_signals: bool, ready: Callable[[], None]
) -> bool:
    """Call ``ready`` once SIGINT/SIGTERM are handled, then await ``work``; ``False`` if a
    signal came first."""
    if not handle_signals:
        ready()
        await work
        return True
    stopped = False
    try:
        async with asyncio.TaskGroup() as tg:
            signals = tg.create_task(_wait_for_signal(_reload_as_standby), name="signals")
            await asyncio.sleep(0)  # the task's first step installs the signal handlers
            ready()
            await work
            signals.cancel()
    except* _StopRequested:
        stopped = True
    return not stopped


def _links_status(count: int) -> str:
    return f"active, {count} PBX link{'' if count == 1 else 's'}"


async def _stand_by(
    settings: Settings,
    stack: contextlib.AsyncExitStack,
    standby_http: contextlib.AsyncExitStack,
    notifier: SystemdNotifier,
    handle_signals: bool,
) -> tuple[LeaderLock, int] | None:
    """Serve as standby until the HA lock is ours: the lock (owned by ``stack``) and the port
    the standby's HTTP app holds (in ``standby_http``); ``None`` when stopped first."""
    leader = LeaderLock.from_settings(settings.ha, store_url(settings.store))
    await stack.enter_async_context(leader)
    port = settings.http.port
    if settings.http.enabled:
        port = await standby_http.enter_async_context(
            serve_standby(leader, settings.http.host, port)
        )
    # Ready as far as systemd is concerned: a standby is doing its job.
    if not await _unless_stopped(
        leader.acquire(), handle_signals, lambda: notifier.ready("standby")
    ):
        notifier.stopping()
        log.info("stopping")
        return None
    return leader, port


async def run_daemon(
    settings: Settings,
    *,
    handle_signals: bool = True,
    on_ready: Callable[[Floor, int | None], None] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or cancellation); ``on_ready`` gets the floor and HTTP port.

    With ``[ha] enabled`` it first waits as standby until it holds the lock (docs/operations.md),
    and raises :class:`LockLostError` if the lock's connection fails while active.
    """
    notifier = SystemdNotifier.from_environment()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(notifier.close)
        await stack.enter_async_context(notifier.watchdog())
        stack.callback(notifier.stopping)
        # A standby's HTTP app, closed right before the floor's takes over its port.
        standby_http = contextlib.AsyncExitStack()
        stack.push_async_callback(standby_http.aclose)
        http_port = settings.http.port
        leader: LeaderLock | None = None
        if settings.ha.enabled:
            active = await _stand_by(settings, stack, standby_http, notifier, handle_signals)
            if active is None:
                return
            leader, http_port = active
        pbxs = list(settings.pbx)
        if not pbxs:
            pbxs = [await stack.enter_async_context(demo_pbx(settings))]
        tallies = DailyTallies(
            settings.site.tz, settings.site.effective_call_seconds, keep_days=LIVE_KEEP_DAYS
        )
        store: Store | None = None
        if settings.store.enabled:
            seats = [SeatInfo(s.id, s.name, s.team, s.kind, s.hire_date) for s in settings.seats]
            numbers = NumberKeys.from_settings(settings)  # key files read in the store's thread
            places = await asyncio.to_thread(load_places, settings)
            store = await stack.enter_async_context(
                open_store(
                    settings.store,
                    tallies,
                    seats=seats,
                    pbxs=[p.name for p in pbxs],
                    places=places,
                    numbers=numbers,
                )
            )
        floor = Floor(settings, pbxs, tallies, store)
        health = floor.health
        if leader is not None:
            floor.registry.register(RoleCollector(leader))
            health = with_role(floor.health, leader)
        if floor.compliance is not None:
            # Opt-out and frequency journals, list imports: blocking, done once before any call.
            await asyncio.to_thread(floor.compliance.load)
            abandon = AbandonRateCollector(settings.site.name, floor.compliance.abandon_figures)
            floor.registry.register(abandon)
        port: int | None = None
        await standby_http.aclose()
        if settings.http.enabled:
            app = build_app(floor.registry, health, floor.live.exposition.render_async)
            add_api_routes(app, floor, token=settings.http.resolved_api_token())
            port = await stack.enter_async_context(serve_http(app, settings.http.host, http_port))
            log.info("http_listening", url=f"http://{settings.http.host}:{port}/metrics")
        if on_ready is not None:
            on_ready(floor, port)
        # What start-up built (modules, settings, restored tallies, caches) lives as long as the
        # daemon: out of the collector's reach, full collections need not walk it every time.
        gc.freeze()
        try:
            async with asyncio.TaskGroup() as tg:
                for name, coroutine in floor.background_tasks():
                    tg.create_task(coroutine, name=name)
                if handle_signals:
                    reloader = floor.policy_reloader
                    on_reload = reloader.request if reloader is not None else None
                    tg.create_task(_wait_for_signal(on_reload), name="signals")
                if leader is not None:
                    tg.create_task(leader.watch(), name="ha-watch")
                if store is not None and settings.store.retention_days is not None:
                    purging = purge_daily(
                        store.engine, settings.store.retention_days, settings.site.tz
                    )
                    tg.create_task(purging, name="store-retention")
                if store is not None:
                    closing = store.day_closer(tallies, settings.store.close_day_after_minutes * 60)
                    tg.create_task(closing.run(), name="store-close-days")
                # Ready once the tasks took their first step (signal handlers installed).
                await asyncio.sleep(0)
                notifier.ready(_links_status(len(floor.links)))
        except* _StopRequested:
            notifier.stopping()
            log.info("stopping")
        except* LockLostError as lost:
            notifier.stopping()
            raise lost.exceptions[0] from None
