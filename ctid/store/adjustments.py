"""Quota adjustments in the store: one audit row per entry, loaded back into memory on start.

Rows are append-only (a revocation is a row of its own) and carry the id the daemon gave the
entry. After a restart ids continue from the largest one stored — in the database *or* still
waiting in the writer's spool file, which is read first so that nothing moving from the
spool into the database in between is missed. Loading is blocking: call it from a thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import structlog
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from ctid.ami.backoff import backoff_delay
from ctid.errors import StoreError
from ctid.policy.adjustments import Adjustment, AdjustmentKind, Adjustments
from ctid.policy.schema import QUOTA_NAMES, QuotaName
from ctid.store.migrate import describe_error
from ctid.store.rows import StoreRow
from ctid.store.schema import quota_adjustments

log = structlog.get_logger("ctid.store")

TABLE = "quota_adjustments"
RESTORE_DAYS = 31
"""Days back whose adjustments come back into memory (later days, including future ones,
always do): the make-up window is a week; a month keeps ``ctid adjust list`` useful."""
_KINDS: tuple[str, ...] = get_args(AdjustmentKind)


@dataclass(frozen=True, slots=True)
class StoredAdjustments:
    entries: list[Adjustment]
    next_id: int
    """One more than the largest id stored, whatever its day."""


def adjustment_row(item: Adjustment) -> StoreRow:
    """An entry as a row of JSON values (it may wait in the spool file)."""
    values = {
        "id": item.id,
        "seat": item.seat,
        "day": item.day.isoformat(),
        "kind": item.kind,
        "hours": item.hours,
        "quota": item.quota,
        "value": item.value,
        "revokes": item.revokes,
        "by": item.by,
        "at": item.at.timestamp(),
        "reason": item.reason,
    }
    return StoreRow(TABLE, values)


def adjustment_from_values(values: Mapping[Any, Any]) -> Adjustment:
    """A stored row (database: dates and datetimes; spool: ISO text and epoch seconds)."""
    kind, quota = values["kind"], values["quota"]
    if kind not in _KINDS or (quota is not None and quota not in QUOTA_NAMES):
        raise StoreError(f"adjustment {values['id']}: unknown kind {kind!r} or quota {quota!r}")
    day, at = values["day"], values["at"]
    return Adjustment(
        id=int(values["id"]),
        seat=values["seat"],
        day=dt.date.fromisoformat(day) if isinstance(day, str) else day,
        kind=kind,
        by=values["by"],
        at=at if isinstance(at, dt.datetime) else dt.datetime.fromtimestamp(at, dt.UTC),
        reason=values["reason"],
        hours=float(values["hours"]),
        quota=_quota(quota),
        value=values["value"],
        revokes=values["revokes"],
    )


def _quota(name: str | None) -> QuotaName | None:
    return next((q for q in QUOTA_NAMES if q == name), None)


def load_adjustments(engine: Engine, since: dt.date, spool: Path | None) -> StoredAdjustments:
    """Entries of ``since`` and later days, and the next free id (blocking)."""
    spooled = list(spooled_adjustments(spool)) if spool is not None else []
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(quota_adjustments).where(quota_adjustments.c.day >= since)
            ).all()
            largest = connection.execute(select(func.max(quota_adjustments.c.id))).scalar()
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the adjustments: {describe_error(err)}") from err
    found = {a.id: a for a in spooled if a.day >= since}
    found |= {a.id: a for a in (adjustment_from_values(r._mapping) for r in rows)}
    next_id = max([largest or 0, *(a.id for a in spooled)]) + 1
    return StoredAdjustments([found[key] for key in sorted(found)], next_id)


def adjustments_from(engine: Engine, first: dt.date) -> Adjustments:
    """The stored entries of ``first`` and later days, net of revocations (for reports)."""
    stored = load_adjustments(engine, first, None)
    adjustments = Adjustments()
    adjustments.restore(stored.entries, stored.next_id)
    return adjustments


def spooled_adjustments(path: Path) -> Iterator[Adjustment]:
    """Adjustment rows waiting in the writer's spool file (lines ``<rows>\\t<json unit>``).

    Only lines naming the table are decoded; unreadable lines are the writer's to count.
    """
    marker = f'"{TABLE}"'.encode()
    try:
        with path.open("rb") as handle:
            for line in handle:
                if marker in line:
                    yield from _adjustments_in(line)
    except FileNotFoundError:
        return
    except OSError as err:
        raise StoreError(f"{path}: cannot read the spool ({err.strerror})") from err


def _adjustments_in(line: bytes) -> Iterator[Adjustment]:
    try:
        unit = json.loads(line.partition(b"\t")[2])
        rows = [values for table, values in unit if table == TABLE]
        entries = [adjustment_from_values(values) for values in rows]
    except (ValueError, TypeError, KeyError, StoreError):
        return  # a line cut short by a crash
    yield from entries


def restore(adjustments: Adjustments, stored: StoredAdjustments) -> None:
    adjustments.restore(stored.entries, stored.next_id)
    log.info("adjustments_restored", entries=len(stored.entries), next_id=stored.next_id)


async def restore_when_reachable(
    engine: Engine,
    adjustments: Adjustments,
    since: Callable[[], dt.date],
    spool: Path | None,
    *,
    backoff: tuple[float, float] = (0.5, 30.0),
    rng: Callable[[], float] = random.random,
) -> None:
    """The database was unreachable at start: keep trying, then put the entries back."""
    attempt = 0
    while True:
        try:
            stored = await asyncio.to_thread(load_adjustments, engine, since(), spool)
        except StoreError as err:
            if attempt == 0:  # once per outage, not per retry
                log.warning("adjustments_not_restored", error=str(err))
            initial, maximum = backoff
            await asyncio.sleep(backoff_delay(attempt, initial=initial, maximum=maximum, rng=rng))
            attempt += 1
            continue
        restore(adjustments, stored)
        return
