"""Per-seat, per-day changes to quotas (leave, half day, field visits, overrides), audited.

Order of application: leave (no quota at all), half day (×0.5), field visit (the quotas in
``field_visit_reduces`` × the share of shift hours left), then manual overrides, which win.
Nothing is deleted: revoking records a new entry, so the history answers "who changed what".
Entries go to ``on_record`` as they are made (the daemon stores them); ``restore`` puts stored
ones back after a restart, so ids continue where they left off.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
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

    def __init__(self, on_record: Callable[[Adjustment], None] | None = None) -> None:
        self.history: list[Adjustment] = []
        self.version = 0
        self.on_record = on_record
        """Called with every new entry (not with restored ones)."""
        self.restored = True
        """False while stored entries are still to be put back: new ids could collide with
        theirs, so recording is refused until :meth:`restore`."""
        self._next_id = 1
        self._active: dict[tuple[str, dt.date], dict[int, Adjustment]] = {}

    def restore(self, entries: Iterable[Adjustment], next_id: int = 1) -> None:
        """Put stored entries back (any order); new ids start at ``next_id`` or later."""
        by_id = {item.id: item for item in self.history} | {item.id: item for item in entries}
        self.history = [by_id[key] for key in sorted(by_id)]
        self._active = {}
        for item in self.history:  # id order is recording order: a revocation follows its target
            if item.kind != "revoke":
                self._active.setdefault((item.seat, item.day), {})[item.id] = item
            elif item.revokes is not None:
                self._active.get((item.seat, item.day), {}).pop(item.revokes, None)
        self._next_id = max(self._next_id, next_id, max(by_id, default=0) + 1)
        self.restored = True
        self.version += 1

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
        entry = self._record(target.seat, target.day, "revoke", by, at, reason, revokes=target.id)
        del self._active[(target.seat, target.day)][adjustment_id]  # only once recorded
        return entry

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
        if not self.restored:
            raise PolicyError("earlier adjustments are not loaded from the store yet")
        entry = Adjustment(
            self._next_id, seat, day, kind, by, at, reason, hours, quota, value, revokes
        )
        self._next_id += 1
        self.history.append(entry)
        if kind != "revoke":
            self._active.setdefault((seat, day), {})[entry.id] = entry
        self.version += 1
        if self.on_record is not None:
            self.on_record(entry)
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
