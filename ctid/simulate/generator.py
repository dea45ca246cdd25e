"""A whole simulation: plan, lazily rendered AMI stream, and truth.  No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from ctid.ami.capture import Capture, RecordedFrame
from ctid.simulate.plan import PlannedCall, SimulationSpec, plan_calls
from ctid.simulate.render import Progress, SimulatedStream
from ctid.simulate.template import TemplateSet, bundled_templates
from ctid.simulate.truth import simulation_truth


@dataclass(frozen=True, slots=True)
class Simulation:
    spec: SimulationSpec
    templates: TemplateSet
    plan: tuple[PlannedCall, ...]

    def stream(self, progress: Progress | None = None) -> SimulatedStream:
        return SimulatedStream(self.templates, self.plan, progress)

    def capture(self, progress: Progress | None = None, *, lazy: bool = True) -> Capture:
        """The stream as one AMI connection (banner, login response, events).

        ``lazy`` keeps the events a :class:`SimulatedStream`: the replay server only
        iterates them and asks whether there are any, so a long simulation is made while it
        is served instead of being held in memory.  ``Capture.events`` is typed as a list,
        hence the cast; ``lazy=False`` gives a real list.
        """
        preamble = self.templates.preamble
        events = self.stream(progress)
        frames = cast(list[RecordedFrame], events) if lazy else list(events)
        return Capture(preamble.banner, preamble.login_response, frames, name="simulated")

    def truth(self) -> dict[str, Any]:
        return simulation_truth(self.spec, self.templates, self.plan)


def simulate(spec: SimulationSpec, templates: TemplateSet | None = None) -> Simulation:
    """Plan a simulation (cheap: frames are made only when the stream is read)."""
    templates = templates or bundled_templates()
    return Simulation(spec, templates, tuple(plan_calls(spec, templates)))
