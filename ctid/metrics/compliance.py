"""Port for the compliance guard: dial checks, violations and interceptions per team.

The guard (``ctid.compliance.service``) calls these as it decides: ``checked`` per outbound
dial, ``violated`` per broken rule with its enforcement mode (``enforce``: the call is
stopped — an interception — or ``monitor``: recorded only).  Until it is wired the families
have no samples.  Interception rate = interceptions / checks.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter


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
