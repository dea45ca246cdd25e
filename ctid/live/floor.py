"""The live side of the floor assembled: seat states, per-seat metrics, health, MQTT feed.

One object the daemon creates next to its PBX links; it hands the links their effect sinks and
a hook for each batch of AMI messages, serves ``/metrics`` through :attr:`exposition`, and owns
its background tasks in :meth:`run` (one task in the daemon's TaskGroup).  Engines that do not
exist yet attach through the ports kept here: ``collector.quotas``, ``compliance``,
``reconcile``, ``policy``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry

from ctid.ami.codec import Message
from ctid.ami.events import TRACKED_EVENTS
from ctid.ami.presence import PRESENCE_EVENTS, normalize_presence
from ctid.live.seat_state import SeatStateBoard, SeatStateView
from ctid.metrics.compliance import ComplianceMetrics
from ctid.metrics.exposition import Exposition
from ctid.metrics.floor import FloorCollector, SeatLabels, merge_open_seconds
from ctid.metrics.gc_pauses import GcPauseMonitor
from ctid.metrics.health import LoopLagMonitor, PolicyInfo, QueueDepths, ReconcileMetrics
from ctid.metrics.quota import Workday, WorkdayCollector
from ctid.metrics.seat_outcomes import SeatOutcomes
from ctid.mqtt.feed import CallFeed, SeatStateFeed
from ctid.mqtt.publisher import MqttPublisher
from ctid.mqtt.settings import MqttSettings
from ctid.mqtt.today import SeatTodayFeed
from ctid.pipeline import EffectSink, PbxPipeline
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker

LIVE_EVENTS: frozenset[str] = TRACKED_EVENTS | PRESENCE_EVENTS
"""What the AMI codec must keep (``keep_events``) for the tracker and the seat states."""


class Link(Protocol):
    """What the live floor reads from a PBX link (``ctid.daemon.PbxLink`` fits)."""

    pipeline: PbxPipeline

    def pbx_now(self, local_now: float) -> float: ...


class LiveFloor:
    def __init__(
        self,
        *,
        site: str,
        seats: Mapping[str, SeatLabels],
        tallies: DailyTallies,
        registry: CollectorRegistry,
        links: Callable[[], Sequence[Link]],
        directory: EndpointDirectory,
        mqtt: MqttSettings | None = None,
        wrap_up_seconds: float = 0.0,
        workday: Workday | None = None,
        show_numbers: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._links = links
        teams = {seat: labels.team for seat, labels in seats.items()}
        self.board = SeatStateBoard(
            lambda device: directory.classify(device).seat,
            wrap_up_seconds=wrap_up_seconds,
            start=clock(),
        )
        self.states = SeatStateView(self.board, self._trackers, self._pbx_now)
        self.outcomes = SeatOutcomes(tallies.local_day)
        self.collector = FloorCollector(
            site,
            seats,
            tallies,
            [self._open_seconds],
            clock,
            outcomes=self.outcomes,
            states=self.states,
        )
        self.exposition = Exposition(registry, [self.collector])
        registry.register(WorkdayCollector(site, workday or Workday(tallies.tz), clock))
        self.queues = QueueDepths()
        registry.register(self.queues)
        self.policy = PolicyInfo()
        registry.register(self.policy)
        self.reconcile = ReconcileMetrics(registry)
        self.compliance = ComplianceMetrics(registry, site, teams)
        self._lag = LoopLagMonitor(registry)
        self._gc_pauses = GcPauseMonitor(registry)
        self.sinks: list[EffectSink] = [self.board, self.outcomes]
        self.publisher: MqttPublisher | None = None
        self.call_feed: CallFeed | None = None
        self.state_feed: SeatStateFeed | None = None
        self.today_feed: SeatTodayFeed | None = None
        if mqtt is not None and mqtt.enabled:
            self._setup_mqtt(mqtt, site, teams, tallies, registry, show_numbers, clock)

    def _setup_mqtt(
        self,
        settings: MqttSettings,
        site: str,
        teams: Mapping[str, str],
        tallies: DailyTallies,
        registry: CollectorRegistry,
        show_numbers: bool,
        clock: Callable[[], float],
    ) -> None:
        self.publisher = MqttPublisher(settings, site, registry)
        self.queues.register("mqtt", self.publisher.depth, settings.queue_size)
        self.call_feed = CallFeed(self.publisher, teams, show_numbers=show_numbers)
        self.state_feed = SeatStateFeed(
            self.publisher, self.states, teams, clock, settings.state_interval
        )
        self.today_feed = SeatTodayFeed(
            self.publisher, tallies, teams, clock, settings.state_interval
        )
        self.publisher.on_connected = self._republish
        self.sinks += [self.call_feed, self.today_feed]

    def _republish(self) -> None:
        for feed in (self.state_feed, self.today_feed):
            if feed is not None:
                feed.republish()

    # --- hooks for the PBX links ------------------------------------------------------

    def on_batch(self, link: Link, batch: list[Message], received_at: float) -> None:
        """Call after ``link.pipeline.on_messages(batch, ...)`` with the same batch."""
        pbx_time = link.pbx_now(received_at)
        for message in batch:
            if message.name in PRESENCE_EVENTS:
                event = normalize_presence(message, pbx_time)
                if event is not None:
                    self.board.on_presence(event)
        if self.call_feed is not None:
            self.call_feed.after_batch(link.pipeline.tracker, batch)

    async def run(self) -> None:
        """Background work: loop-lag probe, MQTT publisher, seat-state and today feeds."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._lag.run(), name="loop-lag")
            if self.publisher is not None and self.state_feed is not None:
                tg.create_task(self.publisher.run(), name="mqtt")
                tg.create_task(self.state_feed.run(), name="mqtt-seat-states")
            if self.today_feed is not None:
                tg.create_task(self.today_feed.run(), name="mqtt-seat-today")

    # --- views over the links ---------------------------------------------------------

    def _trackers(self) -> list[CallTracker]:
        return [link.pipeline.tracker for link in self._links()]

    def _pbx_now(self, now: float) -> float:
        links = self._links()
        return links[0].pbx_now(now) if links else now

    def _open_seconds(self, now: float) -> Mapping[str, tuple[float, float]]:
        return merge_open_seconds(
            [link.pipeline.tracker.open_seconds(link.pbx_now(now)) for link in self._links()]
        )
