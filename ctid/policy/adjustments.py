"""Per-seat, per-day changes to quotas (leave, half day, field visits, overrides), audited.

Order of application: leave (no quota at all), half day (×0.5), field visit (the quotas in
``field_visit_reduces`` × the share of shift hours left), then manual overrides, which win.
Nothing is deleted: revoking records a new entry, so the history answers "who changed what".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from ctid.errors import PolicyError
from ctid.policy.schema import QuotaName

AdjustmentKind = Literal["leave", "half_day", "field_visit", "override", "revoke"]


@dataclass(frozen=True, slots=True)
class Adjustment:
    id: int
    seat: str
    day: dt.date
    kind: AdjustmentKind
    by: str
    at: dt.datetime
    reason: str
    hours: float = 0.0
    quota: QuotaName | None = None
    value: float | None = None
    revokes: int | None = None


@dataclass(frozen=True, slots=True)
class DayAdjustment:
    """The net effect of one seat-day's active adjustments."""

    leave: bool = False
    half_day: bool = False
    field_visit_hours: float = 0.0
    overrides: dict[QuotaName, float] = field(default_factory=dict)


NO_ADJUSTMENT = DayAdjustment()


class Adjustments:
    """In-memory store; ``version`` changes on every write so caches know to refresh."""

    def __init__(self) -> None:
        self.history: list[Adjustment] = []
        self.version = 0
        self._active: dict[tuple[str, dt.date], dict[int, Adjustment]] = {}

    def leave(
        self, seat: str, day: dt.date, *, by: str, at: dt.datetime, reason: str
    ) -> Adjustment:
        return self._record(seat, day, "leave", by, at, reason)

    def half_day(
        self, seat: str, day: dt.date, *, by: str, at: dt.datetime, reason: str
    ) -> Adjustment:
        return self._record(seat, day, "half_day", by, at, reason)

    def field_visit(
        self, seat: str, day: dt.date, hours: float, *, by: str, at: dt.datetime, reason: str
    ) -> Adjustment:
        if hours <= 0:
            raise PolicyError(f"field visit hours must be positive, got {hours}")
        return self._record(seat, day, "field_visit", by, at, reason, hours=hours)

    def override(
        self,
        seat: str,
        day: dt.date,
        quota: QuotaName,
        value: float,
        *,
        by: str,
        at: dt.datetime,
        reason: str,
    ) -> Adjustment:
        if value < 0:
            raise PolicyError(f"override of {quota} must not be negative, got {value}")
        return self._record(seat, day, "override", by, at, reason, quota=quota, value=value)

    def revoke(self, adjustment_id: int, *, by: str, at: dt.datetime, reason: str) -> Adjustment:
        target = next((a for a in self.history if a.id == adjustment_id), None)
        if target is None or adjustment_id not in self._active.get((target.seat, target.day), {}):
            raise PolicyError(f"no active adjustment {adjustment_id}")
        del self._active[(target.seat, target.day)][adjustment_id]
        return self._record(target.seat, target.day, "revoke", by, at, reason, revokes=target.id)

    def for_day(self, seat: str, day: dt.date) -> DayAdjustment:
        active = self._active.get((seat, day))
        if not active:
            return NO_ADJUSTMENT
        overrides: dict[QuotaName, float] = {}
        for item in active.values():  # insertion order: a later override of a quota wins
            if item.quota is not None and item.value is not None:
                overrides[item.quota] = item.value
        kinds = {item.kind for item in active.values()}
        return DayAdjustment(
            leave="leave" in kinds,
            half_day="half_day" in kinds,
            field_visit_hours=sum(a.hours for a in active.values() if a.kind == "field_visit"),
            overrides=overrides,
        )

    def _record(
        self,
        seat: str,
        day: dt.date,
        kind: AdjustmentKind,
        by: str,
        at: dt.datetime,
        reason: str,
        *,
        hours: float = 0.0,
        quota: QuotaName | None = None,
        value: float | None = None,
        revokes: int | None = None,
    ) -> Adjustment:
        if not by or not reason:
            raise PolicyError("an adjustment needs 'by' and 'reason' for the audit trail")
        if at.tzinfo is None:
            raise PolicyError("adjustment time must be timezone-aware")
        entry = Adjustment(
            len(self.history) + 1, seat, day, kind, by, at, reason, hours, quota, value, revokes
        )
        self.history.append(entry)
        if kind != "revoke":
            self._active.setdefault((seat, day), {})[entry.id] = entry
        self.version += 1
        return entry


def adjusted_targets(
    base: dict[QuotaName, float],
    adjustment: DayAdjustment,
    shift_hours: float,
    reduced_by_field_visit: list[QuotaName],
) -> dict[QuotaName, float]:
    if adjustment.leave:
        return {}
    targets = dict(base)
    factor = 0.5 if adjustment.half_day else 1.0
    # (shift - visit) / shift rather than 1 - visit/shift: 120 × 6/9 is exactly 80.
    visit_share = max(0.0, shift_hours - adjustment.field_visit_hours) / shift_hours
    for quota in targets:
        targets[quota] *= factor * (visit_share if quota in reduced_by_field_visit else 1.0)
    targets.update(adjustment.overrides)
    return targets
