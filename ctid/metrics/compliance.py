"""Port for the compliance guard: dial checks, violations and interceptions per team.

The guard (``ctid.compliance.service``) calls these as it decides: ``checked`` per outbound
dial, ``violated`` per broken rule with its enforcement mode (``enforce``: the call is
stopped — an interception — or ``monitor``: recorded only).  Every configured team's series
exist at 0 from the start (``increase()`` would miss a series' first violation); violations
by teams the config does not know appear when they happen.  Interception rate =
interceptions / checks.

:class:`AbandonRateCollector` reads the abandon-rate rule's report windows at scrape time
(``ComplianceService.abandon_figures``): per queue and window, the rate and its counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric

from ctid.compliance.decision import Rule

WindowFigures = tuple[str, str, int, int]
"""(queue, window label, offered, abandoned): ``ctid.compliance.abandon.WindowCount``."""


class ComplianceMetrics:
    def __init__(self, registry: CollectorRegistry, site: str, teams: Mapping[str, str]) -> None:
        self._site = site
        self._teams = teams
        self._checks = Counter(
            "ctid_compliance_checks",
            "Outbound dials the policy engine checked",
            ["site", "team"],
            registry=registry,
        )
        self._violations = Counter(
            "ctid_compliance_violations",
            "Policy rule violations, by rule and enforcement mode",
            ["site", "team", "rule", "mode"],
            registry=registry,
        )
        self._interceptions = Counter(
            "ctid_compliance_interceptions",
            "Outbound calls stopped (hung up or redirected) by an enforced rule",
            ["site", "team", "rule"],
            registry=registry,
        )

        for team in sorted({*teams.values(), "default"}):
            self._checks.labels(site, team)
            for rule in Rule:
                self._interceptions.labels(site, team, str(rule))
                for mode in ("enforce", "monitor"):
                    self._violations.labels(site, team, str(rule), mode)

    def _team(self, seat: str | None) -> str:
        return self._teams.get(seat, "default") if seat else ""

    def checked(self, seat: str | None) -> None:
        self._checks.labels(self._site, self._team(seat)).inc()

    def violated(
        self, seat: str | None, rule: str, mode: str, *, intercepted: bool | None = None
    ) -> None:
        """One broken rule.  ``intercepted`` says whether the call was stopped; by default,
        exactly when ``mode`` is ``enforce``."""
        team = self._team(seat)
        self._violations.labels(self._site, team, rule, mode).inc()
        if intercepted if intercepted is not None else mode == "enforce":
            self._interceptions.labels(self._site, team, rule).inc()


class AbandonRateCollector:
    """``ctid_abandon_rate_ratio`` and its counts per queue and report window (24h, 30d)."""

    def __init__(self, site: str, figures: Callable[[], Iterable[WindowFigures]]) -> None:
        self._site = site
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        labels = ["site", "queue", "window"]
        ratio = GaugeMetricFamily(
            "ctid_abandon_rate_ratio",
            "Abandoned / offered inbound calls of a queue that ended in the window "
            "(no sample while none was offered)",
            labels=labels,
        )
        offered_calls = GaugeMetricFamily(
            "ctid_abandon_rate_offered_calls",
            "Inbound calls of a queue that ended in the window",
            labels=labels,
        )
        abandoned_calls = GaugeMetricFamily(
            "ctid_abandon_rate_abandoned_calls",
            "Inbound calls of a queue that ended in the window abandoned by the caller",
            labels=labels,
        )
        for queue, window, offered, abandoned in self._figures():
            key = [self._site, queue, window]
            offered_calls.add_metric(key, offered)
            abandoned_calls.add_metric(key, abandoned)
            if offered:
                ratio.add_metric(key, abandoned / offered)
        yield from (ratio, offered_calls, abandoned_calls)
