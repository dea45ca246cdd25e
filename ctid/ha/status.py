"""How the role shows: ``ha`` in /healthz, ``ctid_ha_active`` in /metrics, and the small HTTP app
a standby serves until it takes over (then the daemon's own app replaces it on the same port)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from ctid.ha.leader import Role
from ctid.http import HealthReport, build_app, serve_http


class HasRole(Protocol):
    """What reporting needs of :class:`~ctid.ha.leader.LeaderLock`."""

    @property
    def role(self) -> Role: ...
    def describe(self) -> dict[str, Any]: ...


class RoleCollector:
    """``ctid_ha_active``: 1 while this instance holds the lock and tracks, 0 otherwise."""

    def __init__(self, leader: HasRole) -> None:
        self._leader = leader

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "ctid_ha_active",
            "1 while this instance holds the active/standby lock and tracks the PBXs",
            value=1.0 if self._leader.role is Role.ACTIVE else 0.0,
        )


def with_role(health: HealthReport, leader: HasRole) -> HealthReport:
    """The active's /healthz report, with its role added."""

    def report() -> tuple[bool, dict[str, Any]]:
        healthy, body = health()
        return healthy, {**body, "ha": leader.describe()}

    return report


def standby_health(leader: HasRole) -> tuple[bool, dict[str, Any]]:
    """A standby is healthy: waiting is its job.  (Route traffic by ``ha.role``, not by 200.)"""
    return True, {"status": leader.role.value, "ha": leader.describe()}


@contextlib.asynccontextmanager
async def serve_standby(leader: HasRole, host: str, port: int) -> AsyncIterator[int]:
    """/healthz and /metrics of a standby; yields the bound port."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RoleCollector(leader))
    app = build_app(registry, lambda: standby_health(leader))
    async with serve_http(app, host, port) as bound:
        yield bound
