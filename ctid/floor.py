"""The floor: everything the daemon keeps for its lifetime, wired together.

Per PBX a :class:`~ctid.pbx_link.PbxLink`; across them one set of daily tallies, the live
side (seat states, metrics, MQTT), and the optional engines — store, quota, compliance — each
attached as effect sinks, event sinks and background tasks. With a store, quota adjustments,
activated policy versions and compliance violations are written to it too; with MQTT,
violations, quota events and the end-of-day report are published (``ctid.mqtt.violations``,
``ctid.mqtt.quota``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import InfoMetricFamily, Metric

from ctid import __version__
from ctid.ami.events import AmiEvent, CdrWritten
from ctid.cdr_checks import CdrChecks
from ctid.compliance import (
    ActionOutcome,
    ActionSender,
    ComplianceService,
    Decision,
    load_compliance,
    tracker_lookup,
)
from ctid.compliance.enforcer import Settled
from ctid.config import PbxSettings, Settings
from ctid.live.floor import LIVE_EVENTS, LiveFloor
from ctid.metrics.calls import CallMetrics
from ctid.metrics.floor import SeatLabels
from ctid.metrics.health import PbxCollector
from ctid.metrics.quota import Workday
from ctid.mqtt.command_service import MqttCommands
from ctid.mqtt.commands import CommandTopics
from ctid.mqtt.quota import QuotaFeed
from ctid.mqtt.today import EngineTodayQuotas
from ctid.mqtt.violations import ViolationFeed
from ctid.pbx_link import PbxLink
from ctid.pipeline import EffectSink, EventSink
from ctid.policy import (
    Adjustments,
    QuotaEngine,
    QuotaEvent,
    QuotaScheduler,
    SystemClock,
    build_report,
    resolve_seats,
    write_report_files,
)
from ctid.policy.provider import EngineQuotaProvider
from ctid.policy.reload import PolicyReloader
from ctid.policy.versioning import PolicyDocument, read_policy
from ctid.store.metrics import StoreCollector
from ctid.store.policy_versions import policy_version_row
from ctid.store.runtime import Store
from ctid.store.violations import ViolationRecorder
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Effect
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker

log = structlog.get_logger("ctid")


class Floor:
    def __init__(
        self,
        settings: Settings,
        pbxs: list[PbxSettings],
        tallies: DailyTallies,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.tallies = tallies
        self.store = store
        self.registry = CollectorRegistry(auto_describe=True)
        site = settings.site
        teams = {seat.id: seat.team for seat in settings.seats}
        self.links: list[PbxLink] = []
        self.live = LiveFloor(
            site=site.name,
            seats={seat.id: SeatLabels(seat.team, seat.name) for seat in settings.seats},
            tallies=tallies,
            registry=self.registry,
            links=lambda: self.links,
            directory=EndpointDirectory(settings.seat_map(), [t for p in pbxs for t in p.trunks]),
            mqtt=settings.mqtt,
            wrap_up_seconds=site.wrap_up_seconds,
            workday=Workday(site.tz, site.workday_start, site.workday_end),
            show_numbers=settings.show_numbers,
        )
        # Ended calls against the PBX's Cdr events; Master.csv backfill after AMI gaps.
        self.cdr_checks = CdrChecks(settings, pbxs, self.live.reconcile, store, lambda: self.links)
        calls = CallMetrics(None, site.name, teams)  # rendered by the fast exposition
        self.live.exposition.add_source(calls)
        sinks: list[EffectSink] = [
            calls,
            *self.live.sinks,
            self.cdr_checks.effect_sink,
        ]
        if store is not None:
            sinks.append(store.writer)
            self.registry.register(StoreCollector(store.writer))
        publisher = self.live.publisher  # None without MQTT: no feeds, nothing on the hot path
        self.quota, document = self._quota_engine()
        self.policy_reloader: PolicyReloader | None = None
        self.quota_feed: QuotaFeed | None = None
        if self.quota is not None:
            assert settings.policy.file is not None
            self.policy_reloader = PolicyReloader(
                self.quota,
                settings.policy.file,
                {seat.id: seat for seat in settings.seats},
                self.registry,
                active=document,
                on_activated=self._policy_activated,
            )
            sinks.append(self._quota_sink)
            self.live.collector.quotas = EngineQuotaProvider(self.quota)
            quota = self.quota  # the reloader swaps its policy: read the version live
            self.live.policy.version = lambda: quota.policy.version
            if publisher is not None:
                self.quota_feed = QuotaFeed(publisher, lambda seat: quota.profile(seat).team)
        self.violation_feed: ViolationFeed | None = None
        if publisher is not None and settings.compliance is not None:
            self.violation_feed = ViolationFeed(
                publisher, teams, show_numbers=settings.show_numbers
            )
            sinks += self.violation_feed.sinks
        # Filled once the links exist: the guard looks channels up, the enforcer sends actions.
        trackers: dict[str, CallTracker] = {}
        senders: dict[str, ActionSender] = {}
        self.compliance = self._compliance(trackers, senders)
        if self.compliance is not None:
            sinks.append(self.compliance.effect_sink)
        self.commands = self._mqtt_quotas_and_commands()
        self.links.extend(
            PbxLink(
                pbx,
                settings,
                tallies,
                keep_events=LIVE_EVENTS,
                sinks=sinks,
                event_sinks=self._event_sinks(pbx.name),
                on_batch=self.live.on_batch,
                on_gap=self.cdr_checks.on_gap,
            )
            for pbx in pbxs
        )
        for link in self.links:
            trackers[link.name] = link.pipeline.tracker
            senders[link.name] = link.client
        self.registry.register(PbxCollector(lambda: self.links))
        self.registry.register(_BuildInfo())

    # --- engines ----------------------------------------------------------------------

    def _quota_engine(self) -> tuple[QuotaEngine | None, PolicyDocument | None]:
        path = self.settings.policy.file
        if path is None:
            return None, None
        policy, document = read_policy(path)  # PolicyError: one line, exit 2
        seats = resolve_seats(policy, {seat.id: seat for seat in self.settings.seats})
        adjustments = Adjustments()
        if self.store is not None:
            self.store.keep_adjustments(adjustments)
            self._policy_activated(document)
        return QuotaEngine(policy, seats, adjustments, start=SystemClock().now()), document

    def _policy_activated(self, document: PolicyDocument) -> None:
        if self.store is not None:
            self.store.writer.put([policy_version_row(document, time.time())])

    def _quota_sink(self, effect: Effect) -> None:
        assert self.quota is not None
        for event in self.quota.apply(effect):
            log.info(
                "quota_met",
                seat=event.seat,
                quota=event.quota,
                day=str(event.day),
                policy_version=event.policy_version,
            )
            if self.quota_feed is not None:
                self.quota_feed.event(event)

    async def on_quota_events(self, events: list[QuotaEvent]) -> None:
        for event in events:
            if event.kind == "report_due":
                assert self.quota is not None
                report = build_report(self.quota, event.at)
                if self.quota_feed is not None:
                    self.quota_feed.report(report, event)
                out = self.settings.policy.report_dir
                paths = await asyncio.to_thread(write_report_files, report, out)
                files = [str(p) for p in paths]
                version = event.policy_version
                log.info(
                    "quota_report_written", site=event.site, files=files, policy_version=version
                )
            else:
                log.info(
                    event.kind,
                    seat=event.seat,
                    day=str(event.day),
                    shortfall={q: round(v, 2) for q, v in event.shortfall.items()},
                    makeup_day=str(event.makeup_day) if event.makeup_day else None,
                    policy_version=event.policy_version,
                )
                if self.quota_feed is not None:
                    self.quota_feed.event(event)

    def _compliance(
        self, trackers: dict[str, CallTracker], senders: dict[str, ActionSender]
    ) -> ComplianceService | None:
        if self.settings.compliance is None:
            return None
        settled: list[Settled] = []
        if self.store is not None:
            teams = {seat.id: seat.team for seat in self.settings.seats}
            settled.append(ViolationRecorder(self.store.writer.put, teams))
        if self.violation_feed is not None:
            settled.append(self.violation_feed)
        return ComplianceService(
            load_compliance(self.settings.compliance),
            tracker_lookup(trackers),
            senders,
            self._pbx_now,
            metrics=self.live.compliance,
            on_settled=_each(settled),
        )

    def _mqtt_quotas_and_commands(self) -> MqttCommands | None:
        """With MQTT: quotas on ``seat/<seat>/today``, and the command topics if switched on."""
        publisher, today = self.live.publisher, self.live.today_feed
        if today is not None and self.quota is not None:
            today.quotas = EngineTodayQuotas(self.quota)
        mqtt = self.settings.mqtt
        if publisher is None or not mqtt.commands:
            return None
        token = mqtt.resolved_command_token()  # ConfigError: one line, exit 2
        assert token is not None  # the settings refuse commands without one
        topics = CommandTopics(mqtt.topic_prefix, self.settings.site.name)
        show = self.settings.show_numbers
        return MqttCommands(publisher, self, topics, token, self.registry, show_numbers=show)

    def _event_sinks(self, pbx: str) -> list[EventSink]:
        sinks: list[EventSink] = [self.cdr_checks.event_sink(pbx)]
        if self.compliance is not None:
            sinks.append(self.compliance.event_sink(pbx))
        if self.store is not None:
            record = self.store.cdr_sink(pbx)

            def cdrs(event: AmiEvent) -> None:
                if isinstance(event, CdrWritten):
                    record(event)

            sinks.append(cdrs)
        return sinks

    def _pbx_now(self) -> float:
        # PBX clocks are NTP-synced in practice: the first link's offset stands for all.
        now = time.time()
        return self.links[0].pbx_now(now) if self.links else now

    # --- lifetime ---------------------------------------------------------------------

    def background_tasks(self) -> Iterator[tuple[str, Coroutine[Any, Any, Any]]]:
        """(name, coroutine) of every task the daemon's TaskGroup must own."""
        for link in self.links:
            yield f"ami-{link.name}", link.client.run()
        yield "live", self.live.run()
        yield "cdr-checks", self.cdr_checks.run()
        if self.store is not None:
            yield "store-writer", self.store.writer.run()
            if self.quota is not None and not self.quota.adjustments.restored:
                restoring = self.store.restore_adjustments_later(
                    self.quota.adjustments, self.tallies.tz
                )
                yield "adjustments-restore", restoring
        if self.quota is not None:
            scheduler = QuotaScheduler(self.quota, SystemClock(), self.on_quota_events)
            yield "quota-scheduler", scheduler.run()
        if self.policy_reloader is not None:
            yield "policy-reload", self.policy_reloader.run()
        if self.compliance is not None:
            yield "compliance", self.compliance.run()

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
        report: dict[str, Any] = {"status": "ok" if healthy else "degraded", "pbx": pbxs}
        if self.store is not None:
            writer = self.store.writer
            report["store"] = {"healthy": writer.healthy, "backlog": writer.backlog}
        return healthy, report


def _each(callbacks: list[Settled]) -> Settled | None:
    """One ``on_settled`` for several: the store's recorder, the MQTT feed."""
    if len(callbacks) <= 1:
        return callbacks[0] if callbacks else None

    def settled(decision: Decision, outcome: ActionOutcome | None) -> None:
        for callback in callbacks:
            callback(decision, outcome)

    return settled


class _BuildInfo:
    def collect(self) -> Iterator[Metric]:
        yield InfoMetricFamily(
            "ctid_build", "ctid build information", value={"version": __version__}
        )
