"""Compliance violations in the store: one row per decision, once its outcome is known.

The number is the decision's, masked: the full one is the call's sealed copy
(``calls.remote_sealed``, joined on ``pbx, linkedid``), decrypted only with the number
encryption key and where the privacy settings allow it. Rows are append-only,
keyed by a fingerprint of the decision so a row re-sent from the spool is stored once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, select

from ctid.store.number_seal import Sealer
from ctid.store.rows import StoreRow
from ctid.store.schema import calls, violations

if TYPE_CHECKING:  # the CLI reads violations without loading the compliance rules
    from ctid.compliance.decision import Decision
    from ctid.compliance.enforcer import ActionOutcome

_IN_CHUNK = 500


def fingerprint(decision: Decision) -> str:
    """What tells one decision from another: a rule fires once per call and instant."""
    parts = (decision.pbx, decision.rule, f"{decision.ts:.6f}", decision.linkedid, decision.seat)
    return hashlib.sha256("\x1f".join(p or "" for p in parts).encode()).hexdigest()


def violation_row(decision: Decision, outcome: ActionOutcome | None, team: str | None) -> StoreRow:
    detail: dict[str, Any] = {
        "team": team,
        "number": decision.number,  # masked by the guard
        "mode": str(decision.mode),
        "action": str(decision.action),
        "outcome": None if outcome is None else _outcome(outcome),
        "policy_version": decision.policy_version,
        "reason": decision.reason,
        "channel": decision.channel,
        "uniqueid": decision.uniqueid,
    }
    values = {
        "fingerprint": fingerprint(decision),
        "pbx": decision.pbx,
        "linkedid": decision.linkedid,
        "seat": decision.seat,
        "rule": str(decision.rule),
        "severity": str(decision.mode),
        "at": decision.ts,
        "detail": detail,
    }
    return StoreRow("violations", values)


def _outcome(outcome: ActionOutcome) -> dict[str, Any]:
    return {
        "ami_action": outcome.action,
        "ok": outcome.ok,
        "detail": outcome.detail,
        "sent_at": outcome.sent_at,
        "answered_at": outcome.answered_at,
    }


class ViolationRecorder:
    """The enforcer's ``on_settled``: each settled decision becomes one queued row."""

    def __init__(self, put: Callable[[Iterable[StoreRow]], None], teams: Mapping[str, str]):
        self._put = put
        self._teams = teams

    def __call__(self, decision: Decision, outcome: ActionOutcome | None) -> None:
        team = self._teams.get(decision.seat) if decision.seat else None
        self._put([violation_row(decision, outcome, team)])


@dataclass(frozen=True, slots=True)
class Violation:
    at: dt.datetime
    pbx: str | None
    linkedid: str | None
    seat: str | None
    rule: str
    severity: str
    detail: dict[str, Any]


def load_violations(
    connection: Connection,
    start: dt.datetime,
    end: dt.datetime,
    *,
    seat: str | None = None,
    rule: str | None = None,
) -> list[Violation]:
    """Violations in ``[start, end)``, oldest first (blocking)."""
    where = and_(violations.c.at >= start, violations.c.at < end)
    if seat is not None:
        where = and_(where, violations.c.seat == seat)
    if rule is not None:
        where = and_(where, violations.c.rule == rule)
    query = select(violations).where(where).order_by(violations.c.at, violations.c.id)
    return [
        Violation(r.at, r.pbx, r.linkedid, r.seat, r.rule, r.severity, dict(r.detail))
        for r in connection.execute(query)
    ]


def dialled_numbers(
    connection: Connection, found: list[Violation], sealer: Sealer
) -> dict[tuple[str, str], str]:
    """The full numbers of the violations' calls, decrypted (only where numbers may be shown;
    calls stored without an encryption key have none)."""
    keys = sorted({(v.pbx, v.linkedid) for v in found if v.pbx and v.linkedid})
    numbers: dict[tuple[str, str], str] = {}
    for offset in range(0, len(keys), _IN_CHUNK):
        chunk = keys[offset : offset + _IN_CHUNK]
        for pbx in {p for p, _ in chunk}:
            ids = [linkedid for p, linkedid in chunk if p == pbx]
            query = select(calls.c.linkedid, calls.c.remote_sealed).where(
                calls.c.pbx == pbx, calls.c.linkedid.in_(ids), calls.c.remote_sealed.is_not(None)
            )
            for row in connection.execute(query):
                numbers[(pbx, row.linkedid)] = sealer.open(row.remote_sealed)
    return numbers
