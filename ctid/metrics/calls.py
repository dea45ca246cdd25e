"""Counters fed by ended calls (an effect sink): calls by team, direction and outcome, talk
seconds by team, talk duration per call.

A call belongs to the team of its seat (the dialler, else the first seat that talked); a call no
seat touched (an inbound call abandoned in the queue) has ``team=""``.

Every counter series a configured team can have exists from the start at 0: ``increase()``
over a series that appears with its first call would miss that call, and a ratio of two such
series (failed / all dials) would be wrong exactly when it matters, at the first failures.
The duration histogram is not: 14 series per team for quantiles that one call does not move.

The values live here, not in prometheus_client metric objects: with a few dozen teams these
families are hundreds of samples, which prometheus_client collects and formats at tens of µs
each.  :meth:`CallMetrics.prepare` is the fast text (a :class:`~ctid.metrics.exposition
.FastSource`); :meth:`CallMetrics.collect` the same samples as metric families, for a registry.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client import utils as prometheus_utils
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from ctid.metrics.exposition import Formatting, escape_help, label_string
from ctid.tracker.model import CallEnded, Direction, Effect, Outcome

DURATION_BUCKETS = (5, 15, 30, 60, 120, 180, 300, 600, 1200, 1800, 3600)


def go_float(value: float) -> str:
    """How prometheus_client writes a sample value (``1.0``, ``+Inf``): the same text."""
    return str(prometheus_utils.floatToGoString(value))  # type: ignore[no-untyped-call]


_BOUNDS = tuple(float(b) for b in DURATION_BUCKETS)
_LE = (*(go_float(b) for b in _BOUNDS), "+Inf")

CALLS = ("ctid_calls", "Customer calls ended, by team, direction and outcome")
TALK = ("ctid_talk_seconds", "Seconds seats talked with customers, counted when the call ends")
DURATION = (
    "ctid_call_talk_duration_seconds",
    "Talk time per answered customer call (faxes excluded)",
)


@dataclass(slots=True)
class _Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(_BOUNDS))
    count: int = 0
    total: float = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(_BOUNDS, value)  # le is inclusive: 5.0 goes in le="5.0"
        if index < len(self.buckets):
            self.buckets[index] += 1
        self.count += 1
        self.total += value

    def cumulative(self) -> list[int]:
        out, running = [], 0
        for n in self.buckets:
            running += n
            out.append(running)
        return out


class CallMetrics:
    def __init__(
        self, registry: CollectorRegistry | None, site: str, teams: Mapping[str, str]
    ) -> None:
        """With a ``registry`` the families are registered there (prometheus_client renders
        them); without, add this object to the :class:`~ctid.metrics.exposition.Exposition`'s
        fast sources."""
        self._site = site
        self._teams = teams
        self._calls: dict[tuple[str, str, str], float] = {}
        self._talk: dict[str, float] = {}
        self._duration: dict[str, _Histogram] = {}
        self._labels: dict[tuple[str, ...], str] = {}
        for team in sorted({*teams.values(), "default"}):
            for direction in Direction:
                for outcome in Outcome:
                    self._calls[(team, str(direction), str(outcome))] = 0.0
            self._talk[team] = 0.0
        self._calls[("", str(Direction.INBOUND), str(Outcome.ABANDONED))] = 0.0
        if registry is not None:
            registry.register(self)

    def __call__(self, effect: Effect) -> None:
        if not isinstance(effect, CallEnded):
            return
        call = effect.call
        owner = call.seat
        team = self._teams.get(owner, "default") if owner else ""
        key = (team, str(call.direction), str(call.outcome))
        self._calls[key] = self._calls.get(key, 0.0) + 1
        for segment in call.segments.values():
            seat_team = self._teams.get(segment.seat, "default")
            self._talk[seat_team] = self._talk.get(seat_team, 0.0) + segment.talk_seconds
        if call.segments and not call.fax:
            self._duration.setdefault(team, _Histogram()).observe(call.talk_seconds)

    # --- stock path: metric families for a registry -----------------------------------------

    def collect(self) -> Iterator[Metric]:
        site = self._site
        calls = CounterMetricFamily(*CALLS, labels=["site", "team", "direction", "outcome"])
        for key, value in self._calls.items():
            calls.add_metric([site, *key], value)
        talk = CounterMetricFamily(*TALK, labels=["site", "team"])
        for team, seconds in self._talk.items():
            talk.add_metric([site, team], seconds)
        duration = HistogramMetricFamily(*DURATION, labels=["site", "team"])
        for team, hist in self._duration.items():
            buckets = list(zip(_LE, [*hist.cumulative(), hist.count], strict=True))
            duration.add_metric([site, team], buckets, hist.total)
        yield from (calls, talk, duration)

    # --- fast path ----------------------------------------------------------------------------

    def prepare(self, *, openmetrics: bool) -> Formatting:
        """Copies of the values now; the text (same samples as :meth:`collect`) later."""
        calls = dict(self._calls)
        talk = dict(self._talk)
        duration = {t: (h.cumulative(), h.count, h.total) for t, h in self._duration.items()}

        def formatting() -> list[bytes]:
            return [self._text(calls, talk, duration, openmetrics).encode()]

        return formatting

    async def prepare_async(self, *, openmetrics: bool) -> Formatting:
        return self.prepare(openmetrics=openmetrics)  # per team, not per seat: small

    def _text(
        self,
        calls: dict[tuple[str, str, str], float],
        talk: dict[str, float],
        duration: dict[str, tuple[list[int], int, float]],
        openmetrics: bool,
    ) -> str:
        lines = [*_header(*CALLS, "counter", openmetrics)]
        lines += [
            f"ctid_calls_total{{{self._label(('team', 'direction', 'outcome'), key)}}} "
            f"{go_float(value)}\n"
            for key, value in calls.items()
        ]
        lines += _header(*TALK, "counter", openmetrics)
        lines += [
            f"ctid_talk_seconds_total{{{self._label(('team',), (team,))}}} {go_float(seconds)}\n"
            for team, seconds in talk.items()
        ]
        lines += _header(*DURATION, "histogram", openmetrics)
        name = DURATION[0]
        for team, (cumulative, count, total) in duration.items():
            labels = self._label(("team",), (team,))
            lines += [
                f'{name}_bucket{{{labels},le="{le}"}} {go_float(n)}\n'
                for le, n in zip(_LE, [*cumulative, count], strict=True)
            ]
            lines.append(f"{name}_count{{{labels}}} {go_float(count)}\n")
            lines.append(f"{name}_sum{{{labels}}} {go_float(total)}\n")
        return "".join(lines)

    def _label(self, names: tuple[str, ...], values: tuple[str, ...]) -> str:
        """``site="…",team="…",…``, escaped once per label set (they repeat every scrape)."""
        text = self._labels.get(values)
        if text is None:
            pairs = zip(("site", *names), (self._site, *values), strict=True)
            text = self._labels[values] = label_string(pairs)
        return text


def _header(name: str, documentation: str, kind: str, openmetrics: bool) -> list[str]:
    # The 0.0.4 text format names a counter family by its sample (``_total``); OpenMetrics
    # by the family.
    family = f"{name}_total" if kind == "counter" and not openmetrics else name
    return [
        f"# HELP {family} {escape_help(documentation, openmetrics=openmetrics)}\n",
        f"# TYPE {family} {kind}\n",
    ]
