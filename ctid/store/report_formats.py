"""A :class:`~ctid.store.reporting.PeriodReport` as JSON, CSV (one row per seat) and a table.

Numbers are rounded only here: minutes and targets to 2 decimals, attainment to 6. A quota the
store does not measure has ``null`` actuals and attainment. Follow-ups are the CRM's claims as
the calls verify them: claimed, verified, falsified, and what the falsified ones cost.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ctid.policy.leaderboard import Board
from ctid.policy.period import ClaimCounts, Totals
from ctid.policy.schema import QUOTA_NAMES, QuotaName
from ctid.report import aligned_rows, ruled
from ctid.store.leaderboard_formats import boards_record, boards_table
from ctid.store.reporting import PeriodReport, QuotaSummary, ReportRow

QUOTA_LABELS: dict[QuotaName, str] = {
    "talk_minutes": "talk",
    "effective_calls": "eff",
    "faxes": "fax",
    "follow_ups": "f-up",
    "dials": "dials",
}


def _round_all(values: Mapping[QuotaName, float | None], digits: int) -> dict[str, Any]:
    return {q: None if (v := values.get(q)) is None else round(v, digits) for q in QUOTA_NAMES}


def _round_targets(targets: Mapping[QuotaName, float]) -> dict[str, float]:
    """Every quota: one the tiers leave out has a target of 0 (not measured, nothing owed)."""
    return {q: round(targets.get(q, 0.0), 2) for q in QUOTA_NAMES}


def claims_record(claims: ClaimCounts, fine: float | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "claimed": claims.claimed,
        "verified": claims.verified,
        "falsified": claims.falsified,
        "a_class": claims.a_class,
        "b_class": claims.b_class,
    }
    if fine is not None:
        record["fine"] = round(fine, 2)
    return record


def seat_record(row: ReportRow) -> dict[str, Any]:
    quota = row.quota
    return {
        "rank": row.rank,
        "seat": row.seat,
        "name": row.name,
        "team": row.team,
        "kind": row.kind,
        "calls": row.calls,
        "answered": row.answered,
        "effective": row.effective,
        "talk_minutes": round(row.talk_seconds / 60, 2),
        "hold_minutes": round(row.hold_seconds / 60, 2),
        "talk_seconds": round(row.talk_seconds, 3),
        "hold_seconds": round(row.hold_seconds, 3),
        "faxes": row.faxes,
        "dials": row.dials,
        "tiers": None if quota is None else list(quota.tiers),
        "targets": None if quota is None else _round_targets(quota.targets),
        "attainment": None if quota is None else _round_all(quota.attainment, 6),
        "fine": None if quota is None else round(quota.fine, 2),
        "follow_ups": None if quota is None else claims_record(quota.claims, quota.claim_fine),
    }


def totals_record(totals: Totals) -> dict[str, Any]:
    return {
        "name": totals.name,
        "leader": totals.leader,
        "seats": totals.seats,
        "targets": _round_targets(totals.targets),
        "actuals": _round_all(totals.actuals, 2),
        "attainment": _round_all(totals.attainment, 6),
        "fine": round(totals.fine, 2),
        "follow_ups": claims_record(totals.claims),
    }


def to_json(report: PeriodReport, boards: Sequence[Board] = ()) -> str:
    period, quotas = report.period, report.quotas
    document = {
        "period": {
            "kind": period.kind,
            "first": period.first.isoformat(),
            "last": period.last.isoformat(),
            "through": period.through.isoformat(),
            "timezone": report.timezone,
        },
        "team": report.team,
        "completeness": {pbx: round(share, 6) for pbx, share in report.completeness.items()},
        "policy": None
        if quotas is None
        else {"version": quotas.policy_version, "currency": quotas.currency},
        "seats": [seat_record(row) for row in report.seats],
        "robots": [seat_record(row) for row in report.robots],
        "teams": [] if quotas is None else [totals_record(t) for t in quotas.teams],
        "centre": None if quotas is None else totals_record(quotas.centre),
        "leaderboards": boards_record(boards),
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


CSV_COLUMNS = (
    "rank", "seat", "name", "team", "calls", "answered", "effective", "talk_minutes",
    "hold_minutes", "faxes", "dials", "kind", "tiers",
    *(f"target_{q}" for q in QUOTA_NAMES), *(f"attainment_{q}" for q in QUOTA_NAMES), "fine",
    "follow_ups_claimed", "follow_ups_verified", "follow_ups_falsified", "follow_ups_fine",
)  # fmt: skip


def to_csv(report: PeriodReport, boards: Sequence[Board] = ()) -> str:
    """One row per seat, humans then robots; roll-ups and leaderboards are in the other
    formats (``boards`` is accepted for a uniform signature)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in [*report.seats, *report.robots]:
        record = seat_record(row)
        flat = {k: v for k, v in record.items() if not isinstance(v, dict | list)}
        flat["tiers"] = " ".join(record["tiers"] or [])
        for q in QUOTA_NAMES:
            flat[f"target_{q}"] = (record["targets"] or {}).get(q)
            flat[f"attainment_{q}"] = (record["attainment"] or {}).get(q)
        for key in ("claimed", "verified", "falsified", "fine"):
            flat[f"follow_ups_{key}"] = (record["follow_ups"] or {}).get(key)
        writer.writerow(["" if flat[c] is None else flat[c] for c in CSV_COLUMNS])
    return out.getvalue()


def seat_quotas(rows: Sequence[ReportRow]) -> list[QuotaName]:
    """Quotas with a target for one of ``rows`` that the store counts: columns worth showing."""
    periods = [r.quota for r in rows if r.quota is not None]
    return [
        q
        for q in QUOTA_NAMES
        if any(p.targets.get(q, 0.0) > 0 and p.actuals[q] is not None for p in periods)
    ]


def rollup_quotas(summary: QuotaSummary) -> list[QuotaName]:
    return [q for q in QUOTA_NAMES if summary.centre.targets.get(q, 0.0) > 0]


def percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def money(value: float) -> str:
    return f"{value:.0f}" if value == round(value) else f"{value:.2f}"


def amount(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}".removesuffix(".0")


def title(report: PeriodReport) -> str:
    period = report.period
    text = f"{period.kind} {period.first.isoformat()}"
    if period.last != period.first:
        text += f" .. {period.last.isoformat()}"
    if period.through != period.last:
        text += f", through {period.through.isoformat()}"
    if report.team:
        text += f", team {report.team}"
    if report.quotas is not None:
        text += f" (policy {report.quotas.policy_version}, fines in {report.quotas.currency})"
    return text


def notes(report: PeriodReport) -> list[str]:
    """Lines a reader needs to trust the numbers: AMI gaps, quotas the store cannot count."""
    lines = [
        f"{pbx}: AMI connected {share:.1%} of the period (calls in gaps are missing)"
        for pbx, share in report.completeness.items()
        if share < 1.0
    ]
    centre = report.quotas.centre if report.quotas is not None else None
    unmeasured = centre is not None and centre.actuals["follow_ups"] is None
    if centre and unmeasured and centre.targets.get("follow_ups", 0.0) > 0:
        lines.append("follow_ups: targets only; the store does not count follow-ups (the CRM does)")
    if centre is not None:
        lines.append(
            "claims: follow-ups verified/claimed in the CRM; unverified ones are falsified "
            "(fine included)"
        )
    return lines


def to_table(report: PeriodReport, boards: Sequence[Board] = ()) -> str:
    out = [title(report), *_seat_table(report.seats, seat_quotas(report.seats))]
    if report.robots:
        out += ["", "robots", *_seat_table(report.robots, seat_quotas(report.robots))]
    if report.quotas is not None:
        rollups = [*report.quotas.teams, report.quotas.centre]
        heading = "team totals (human seats): actual/target attainment"
        out += ["", heading, *_totals(rollups, rollup_quotas(report.quotas))]
    out += boards_table(boards)
    return "\n".join(out + notes(report)) + "\n"


def _seat_table(rows: list[ReportRow], quotas: list[QuotaName]) -> list[str]:
    header: tuple[str, ...] = ("#", "seat", "name", "team", "calls", "answ", "eff",
                               "talk min", "hold min", "fax", "dials",
                               *(f"{QUOTA_LABELS[q]}%" for q in quotas))  # fmt: skip
    if rows and rows[0].quota is not None:
        header += ("claims", "fine")
    body = []
    for r in rows:
        cells: tuple[str, ...] = (
            str(r.rank), r.seat, r.name, r.team, str(r.calls), str(r.answered),
            str(r.effective), f"{r.talk_minutes:.1f}", f"{r.hold_seconds / 60:.1f}",
            str(r.faxes), str(r.dials),
        )  # fmt: skip
        if r.quota is not None:
            attained = r.quota.attainment
            claims = f"{r.quota.claims.verified}/{r.quota.claims.claimed}"
            cells += (*(percent(attained[q]) for q in quotas), claims, money(r.quota.fine))
        body.append(cells)
    return ruled(aligned_rows([header, *body], left={1, 2, 3}))


def _totals(rollups: list[Totals], quotas: list[QuotaName]) -> list[str]:
    header = ("team", "leader", "seats", *(QUOTA_LABELS[q] for q in quotas), "fine")
    body = [
        (
            t.name,
            t.leader,
            str(t.seats),
            *(
                f"{amount(t.actuals[q])}/{amount(t.targets.get(q, 0.0))} "
                f"{percent(t.attainment[q]) or '-'}"
                for q in quotas
            ),
            money(t.fine),
        )
        for t in rollups
    ]
    return ruled(aligned_rows([header, *body], left={0, 1}))
