"""Benchmarks for ctid: ``python -m bench.run --quick`` (or ``--full``); see bench/run.py.

Each benchmark is a module with ``run(profile) -> Report``; the types they share live here.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

# Covariant containers, so a list[str] or dict[str, float] is a JsonValue as it is.
JsonValue: TypeAlias = (
    Mapping[str, "JsonValue"] | Sequence["JsonValue"] | str | int | float | bool | None
)


@dataclass(frozen=True, slots=True)
class Profile:
    """How hard to try: ``quick`` fits in a minute, ``full`` repeats more and cuts finer."""

    name: str
    repeats: int  # timed runs of each in-process case
    tcp_repeats: int  # timed runs of each end-to-end case
    split_read: int  # read size (bytes) of the split-UTF-8 check


QUICK = Profile(name="quick", repeats=5, tcp_repeats=3, split_read=7)
FULL = Profile(name="full", repeats=15, tcp_repeats=7, split_read=1)


@dataclass(frozen=True, slots=True)
class Report:
    """What a benchmark hands back: every figure (for the JSON file) and a table to print."""

    figures: dict[str, JsonValue]
    table: str


class BenchError(Exception):
    """A benchmark could not measure what it set out to (wrong frame count, server gone)."""


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds of each run of one case."""

    runs: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def figures(self, frames: int) -> dict[str, JsonValue]:
        return {
            "runs_s": list(self.runs),
            "best_s": self.best,
            "median_s": self.median,
            "best_frames_per_s": frames / self.best,
            "median_frames_per_s": frames / self.median,
        }


def time_round_robin(cases: dict[str, Callable[[], float]], repeats: int) -> dict[str, Timing]:
    """Run every case ``repeats`` times, interleaved so drifting machine load hits all alike.

    A case returns its own elapsed seconds (``time.perf_counter``), so it can leave set-up
    out of the figure.
    """
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            gc.collect()
            runs[name].append(case())
    return {name: Timing(tuple(values)) for name, values in runs.items()}
