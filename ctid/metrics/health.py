"""ctid's own health: AMI links, gaps, event-loop lag, queue depths, reconciliation, policy.

Low-cardinality (labels ``pbx`` or ``queue`` only), so everything here lives in the injected
``CollectorRegistry`` and is rendered by prometheus_client.  Values that need engines not
written yet (CDR reconciliation, the policy engine) are ports: the families exist, with no
samples until an engine reports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DRIFT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class PbxStatus(Protocol):
    """What the health metrics need to know about one PBX link."""

    @property
    def name(self) -> str: ...
    @property
    def connected(self) -> bool: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def frames(self) -> int: ...
    @property
    def events_applied(self) -> int: ...


@runtime_checkable
class HasGaps(Protocol):
    """A link that also reports how long it was without a usable AMI stream (``GapMeter``)."""

    @property
    def gap_seconds(self) -> float: ...


class GapMeter:
    """Seconds without a usable AMI stream; ``down``/``up`` from the link's hooks, any order."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._closed = 0.0
        self._down_since: float | None = None

    def down(self, at: float | None = None) -> None:
        if self._down_since is None:
            self._down_since = self._clock() if at is None else at

    def up(self, at: float | None = None) -> None:
        if self._down_since is not None:
            end = self._clock() if at is None else at
            self._closed += max(0.0, end - self._down_since)
            self._down_since = None

    @property
    def total(self) -> float:
        open_gap = 0.0 if self._down_since is None else max(0.0, self._clock() - self._down_since)
        return self._closed + open_gap


class PbxCollector:
    def __init__(self, links: Callable[[], Sequence[PbxStatus]]) -> None:
        self._links = links

    def collect(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "ctid_ami_connected",
            "1 while the AMI link to the PBX is up and logged in",
            labels=["pbx"],
        )
        frames = CounterMetricFamily(
            "ctid_ami_frames", "AMI frames received from the PBX", labels=["pbx"]
        )
        applied = CounterMetricFamily(
            "ctid_ami_events_applied", "AMI events the call tracker used", labels=["pbx"]
        )
        reconnects = CounterMetricFamily(
            "ctid_ami_reconnects", "Times the AMI link was re-established", labels=["pbx"]
        )
        gaps = CounterMetricFamily(
            "ctid_ami_gap_seconds",
            "Seconds the PBX's events were not reaching ctid (link down or logging in)",
            labels=["pbx"],
        )
        for link in self._links():
            connected.add_metric([link.name], 1.0 if link.connected else 0.0)
            frames.add_metric([link.name], link.frames)
            applied.add_metric([link.name], link.events_applied)
            reconnects.add_metric([link.name], link.reconnects)
            if isinstance(link, HasGaps):
                gaps.add_metric([link.name], link.gap_seconds)
        yield from (connected, frames, applied, reconnects, gaps)


class QueueDepths:
    """``ctid_queue_depth{queue}`` and ``ctid_queue_capacity{queue}`` for registered queues
    (``mqtt``, ``store``): backlog between stages, read at scrape time."""

    def __init__(self) -> None:
        self._queues: dict[str, tuple[Callable[[], int], int]] = {}

    def register(self, name: str, depth: Callable[[], int], capacity: int) -> None:
        self._queues[name] = (depth, capacity)

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "ctid_queue_depth", "Items waiting in an internal queue", labels=["queue"]
        )
        capacity = GaugeMetricFamily(
            "ctid_queue_capacity", "Size limit of an internal queue", labels=["queue"]
        )
        for name, (size, limit) in sorted(self._queues.items()):
            depth.add_metric([name], size())
            capacity.add_metric([name], limit)
        yield from (depth, capacity)


class PolicyInfo:
    """``ctid_policy_info{version}``: the policy in force; no sample until one is loaded."""

    def __init__(self, version: Callable[[], str | None] = lambda: None) -> None:
        self.version = version

    def collect(self) -> Iterator[Metric]:
        current = self.version()
        if current is not None:
            yield InfoMetricFamily("ctid_policy", "The policy in force", value={"version": current})


class ReconcileMetrics:
    """Port for the live CDR reconciliation (``ctid.reconcile_live``): drift and
    completeness per PBX."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._drift = Histogram(
            "ctid_cdr_talk_drift_seconds",
            "Per call with a billed CDR: |CDR billsec - ctid talk, hold and ring time|",
            ["pbx"],
            buckets=DRIFT_BUCKETS,
            registry=registry,
        )
        self._completeness = Gauge(
            "ctid_data_completeness_ratio",
            "Share of Asterisk CDRs that ctid also recorded, over the reconciliation window",
            ["pbx"],
            registry=registry,
        )

    def observe_drift(self, pbx: str, drift_seconds: float) -> None:
        """One reconciled call: what its CDRs bill minus ctid's talk, hold and ring time
        (sign ignored)."""
        self._drift.labels(pbx).observe(abs(drift_seconds))

    def set_completeness(self, pbx: str, ratio: float) -> None:
        self._completeness.labels(pbx).set(ratio)


class LoopLagMonitor:
    """``ctid_event_loop_lag_seconds``: how late a timer fires — anything that blocks the loop
    (a slow scrape, blocking I/O) shows here before it shows as missed AMI pings."""

    def __init__(self, registry: CollectorRegistry, interval: float = 0.25) -> None:
        self._interval = interval
        self._lag = Histogram(
            "ctid_event_loop_lag_seconds",
            "Delay between when a periodic timer should fire and when it does",
            buckets=LAG_BUCKETS,
            registry=registry,
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            self._lag.observe(max(0.0, loop.time() - expected))
