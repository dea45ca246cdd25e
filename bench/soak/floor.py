"""The simulated floor of a soak: its ``ctid simulate`` options, and the same plan made here.

The soak plans the floor itself too (planning is cheap, frames are not made) to know how many
frames the stream holds and when its last call ends; the same options and seed give the same
plan in both processes, which the soak checks against the simulator's truth file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import BenchError
from ctid.errors import CtidError
from ctid.simulate.generator import Simulation, simulate
from ctid.simulate.plan import SimulationSpec

PEAK_5K_FRAMES_PER_S = 2_300
"""A 5,000-seat centre at its busiest hour (docs/performance.md)."""
TARGET_FRAMES_PER_S = 2 * PEAK_5K_FRAMES_PER_S
DEFAULT_SEATS = 5_000
DEFAULT_CALLS_PER_SEAT_HOUR = 32.0
"""With 5,000 seats: ~4,630 frames/s once every seat is in its call cycle (~113 frames a
call).  The first cycle (3600 / 32 ≈ 112 s) is a ramp: each seat's first call starts at a
random moment in it."""
DEFAULT_EXTRA_TALK = (0, 120)
DEFAULT_SEED = 20251122


@dataclass(frozen=True, slots=True)
class FloorSpec:
    seats: int
    calls_per_seat_hour: float
    load_seconds: float
    """Calls start within this many PBX seconds; the last ones then run to their end."""
    seed: int
    start: int
    """PBX clock (epoch seconds) when the first calls may begin."""
    extra_talk: tuple[int, int] = DEFAULT_EXTRA_TALK
    speed: float = 1.0

    def simulation_spec(self) -> SimulationSpec:
        return SimulationSpec(
            seats=self.seats,
            start=float(self.start),
            seed=self.seed,
            calls_per_seat_hour=self.calls_per_seat_hour,
            duration=self.load_seconds,
            extra_talk=self.extra_talk,
        )

    def simulate_args(self) -> list[str]:
        low, high = self.extra_talk
        return [
            "--seats",
            str(self.seats),
            "--calls-per-seat-hour",
            f"{self.calls_per_seat_hour!r}",
            "--duration",
            f"{self.load_seconds!r}s",
            "--seed",
            str(self.seed),
            "--start",
            str(self.start),
            "--extra-talk",
            f"{low}-{high}",
            "--speed",
            f"{self.speed!r}",
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "seats": self.seats,
            "calls_per_seat_hour": self.calls_per_seat_hour,
            "load_seconds": self.load_seconds,
            "seed": self.seed,
            "start": self.start,
            "extra_talk_seconds": list(self.extra_talk),
            "speed": self.speed,
        }


@dataclass(frozen=True, slots=True)
class PlannedFloor:
    calls: int
    """Every planned call, seat-to-seat ones included."""
    frames: int
    """Event frames of the whole stream (``FullyBooted`` and every call's)."""
    pbx_seconds: float
    """From the floor's start to the end of its last call."""


def plan_floor(spec: FloorSpec) -> PlannedFloor:
    try:
        sim = simulate(spec.simulation_spec())
    except CtidError as err:  # the simulator's own check of the options: one line
        raise BenchError(str(err)) from err
    return PlannedFloor(len(sim.plan), len(sim.stream()), _last_end(sim) - spec.start)


def _last_end(sim: Simulation) -> float:
    templates = sim.templates
    return max(
        (
            templates[c.template].moved(templates[c.template].end, c.shift, c.extra)
            for c in sim.plan
        ),
        default=float(sim.spec.start),
    )


def check_same_plan(planned: PlannedFloor, truth: dict[str, Any]) -> None:
    """The simulator's truth must describe the floor planned here (same options, same seed)."""
    if len(truth.get("calls", [])) != planned.calls:
        raise BenchError(
            f"the simulator planned {len(truth.get('calls', []))} calls, the soak {planned.calls}"
        )
