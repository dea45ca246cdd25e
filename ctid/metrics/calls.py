"""Counters fed by ended calls (an effect sink): calls by team, direction and outcome, talk
seconds by team, talk duration per call.

A call belongs to the team of its seat (the dialler, else the first seat that talked); a call no
seat touched (an inbound call abandoned in the queue) has ``team=""``.

Every counter series a configured team can have exists from the start at 0: ``increase()``
over a series that appears with its first call would miss that call, and a ratio of two such
series (failed / all dials) would be wrong exactly when it matters, at the first failures.
The duration histogram is not: 14 series per team for quantiles that one call does not move.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram

from ctid.tracker.model import CallEnded, Direction, Effect, Outcome

DURATION_BUCKETS = (5, 15, 30, 60, 120, 180, 300, 600, 1200, 1800, 3600)


class CallMetrics:
    def __init__(self, registry: CollectorRegistry, site: str, teams: Mapping[str, str]) -> None:
        self._site = site
        self._teams = teams
        self._calls = Counter(
            "ctid_calls",
            "Customer calls ended, by team, direction and outcome",
            ["site", "team", "direction", "outcome"],
            registry=registry,
        )
        self._talk = Counter(
            "ctid_talk_seconds",
            "Seconds seats talked with customers, counted when the call ends",
            ["site", "team"],
            registry=registry,
        )
        self._duration = Histogram(
            "ctid_call_talk_duration_seconds",
            "Talk time per answered customer call (faxes excluded)",
            ["site", "team"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._bound: dict[tuple[str, str, str], Counter] = {}
        for team in sorted({*teams.values(), "default"}):
            for direction in Direction:
                for outcome in Outcome:
                    self._child(team, str(direction), str(outcome))
            self._talk.labels(site, team)
        self._child("", str(Direction.INBOUND), str(Outcome.ABANDONED))

    def _child(self, team: str, direction: str, outcome: str) -> Counter:
        key = (team, direction, outcome)
        child = self._bound.get(key)
        if child is None:
            child = self._bound[key] = self._calls.labels(self._site, *key)
        return child

    def __call__(self, effect: Effect) -> None:
        if not isinstance(effect, CallEnded):
            return
        call = effect.call
        owner = call.seat
        team = self._teams.get(owner, "default") if owner else ""
        self._child(team, str(call.direction), str(call.outcome)).inc()
        for segment in call.segments.values():
            team = self._teams.get(segment.seat, "default")
            self._talk.labels(self._site, team).inc(segment.talk_seconds)
        if call.segments and not call.fax:
            self._duration.labels(self._site, team).observe(call.talk_seconds)
