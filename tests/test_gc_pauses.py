"""The garbage-collection pause histogram: real collections, measured through gc.callbacks."""

from __future__ import annotations

import gc
import weakref

from prometheus_client import CollectorRegistry

from ctid.metrics import gc_pauses
from ctid.metrics.gc_pauses import GcPauseMonitor


def _count(registry: CollectorRegistry, generation: str) -> float:
    value = registry.get_sample_value("ctid_gc_pause_seconds_count", {"generation": generation})
    return value or 0.0


def test_a_full_collection_is_observed_under_generation_2() -> None:
    registry = CollectorRegistry()
    monitor = GcPauseMonitor(registry)  # held, as the live floor holds its own
    before = _count(registry, "2")
    gc.collect()
    assert _count(registry, "2") == before + 1
    assert monitor in gc_pauses._monitors
    pause = registry.get_sample_value("ctid_gc_pause_seconds_sum", {"generation": "2"})
    assert pause is not None
    assert pause > 0


def test_young_collections_are_observed_as_they_happen() -> None:
    registry = CollectorRegistry()
    monitor = GcPauseMonitor(registry)
    garbage = [[index] for index in range(100_000)]  # container allocations trigger gen 0
    del garbage
    assert _count(registry, "0") > 0
    assert monitor in gc_pauses._monitors


def test_a_dropped_monitor_is_no_longer_fed() -> None:
    dropped_registry = CollectorRegistry()
    dropped = weakref.ref(GcPauseMonitor(dropped_registry))
    gc.collect()
    assert dropped() is None  # the hook's weak set alone did not keep it
    fed = _count(dropped_registry, "2")
    held = GcPauseMonitor(CollectorRegistry())
    gc.collect()
    assert _count(dropped_registry, "2") == fed
    assert held in gc_pauses._monitors
    assert gc.callbacks.count(gc_pauses._on_gc) == 1
