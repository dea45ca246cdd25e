"""``ctid_gc_pause_seconds``: how long each garbage collection stopped the interpreter.

A full (generation 2) collection walks every object the collector tracks; with thousands of
calls open it is the longest the event loop ever waits, longer than any scrape.  The loop-lag
histogram shows that the loop was late; this one says whether the collector was the reason.

One ``gc.callbacks`` hook serves every monitor alive (a daemon has one; the tests build many
floors), holding them weakly so a dropped floor takes its histogram with it.
"""

from __future__ import annotations

import gc
import time
import weakref
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

GC_PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

_monitors: weakref.WeakSet[GcPauseMonitor] = weakref.WeakSet()
_started = 0.0


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    # Runs with the interpreter lock held from "start" to "stop": pairs never interleave.
    global _started
    if phase == "start":
        _started = time.perf_counter()
        return
    pause = time.perf_counter() - _started
    generation = int(info["generation"])
    for monitor in list(_monitors):
        monitor.observe(generation, pause)


class GcPauseMonitor:
    def __init__(self, registry: CollectorRegistry) -> None:
        histogram = Histogram(
            "ctid_gc_pause_seconds",
            "How long a garbage collection held the interpreter (and so the event loop), "
            "by generation (2 = full collection)",
            ["generation"],
            buckets=GC_PAUSE_BUCKETS,
            registry=registry,
        )
        self._by_generation = [histogram.labels(str(generation)) for generation in range(3)]
        _monitors.add(self)
        if _on_gc not in gc.callbacks:
            gc.callbacks.append(_on_gc)

    def observe(self, generation: int, pause: float) -> None:
        self._by_generation[generation].observe(pause)
