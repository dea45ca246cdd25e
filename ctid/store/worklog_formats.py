"""A :class:`~ctid.store.worklog.WorkLog` as a table, CSV, JSON and one self-contained HTML page.

Numbers arrive masked; every text in the HTML goes through :func:`html.escape`.
"""

from __future__ import annotations

import csv
import io
import json
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from ctid.report import aligned_rows, ruled
from ctid.store.followups_verify import Verdict
from ctid.store.worklog import LoggedCall, SeatLog, WorkLog

CSV_COLUMNS = (
    "day", "seat", "team", "record", "time", "direction", "number", "outcome", "talk_seconds",
    "effective", "class", "verified", "reason",
)  # fmt: skip
CALL_LABELS = ("time", "direction", "number", "outcome", "talk s", "effective")
CLAIM_LABELS = ("follow-up", "number", "class", "verified", "reason")


def _call_cells(call: LoggedCall) -> tuple[str, ...]:
    return (
        call.at.strftime("%H:%M:%S"), call.direction, call.number, call.outcome,
        f"{call.talk_seconds:.0f}", "yes" if call.effective else "no",
    )  # fmt: skip


def _claim_cells(verdict: Verdict, log: WorkLog) -> tuple[str, ...]:
    claim = verdict.claim
    at = claim.at.astimezone(_zone(log)).strftime("%H:%M:%S")
    verified = "yes" if verdict.verified else "no"
    return (at, claim.number_masked, claim.klass or "", verified, verdict.reason or "")


def _zone(log: WorkLog) -> ZoneInfo:
    return ZoneInfo(log.timezone)


def summary(seat: SeatLog) -> str:
    name = f" {seat.info.name}" if seat.info.name else ""
    return (
        f"{seat.seat}{name} ({seat.info.team}): {len(seat.calls)} calls, {seat.effective} "
        f"effective, {seat.customers_reached} customers reached, follow-ups "
        f"{seat.verified}/{len(seat.follow_ups)} verified"
    )


def title(log: WorkLog) -> str:
    return (
        f"work log {log.day.isoformat()} ({log.timezone}; effective = talk >= {log.threshold:g} s)"
    )


def to_table(log: WorkLog) -> str:
    lines = [title(log)]
    if not log.seats:
        lines.append("no calls and no follow-ups")
    for seat in log.seats:
        lines += ["", summary(seat)]
        if seat.calls:
            body = [_call_cells(call) for call in seat.calls]
            lines += ruled(aligned_rows([CALL_LABELS, *body], left={1, 2, 3, 5}))
        if seat.follow_ups:
            body = [_claim_cells(v, log) for v in seat.follow_ups]
            lines += ruled(aligned_rows([CLAIM_LABELS, *body], left={1, 2, 3, 4}))
    return "\n".join(lines) + "\n"


def _record(seat: SeatLog, log: WorkLog) -> dict[str, Any]:
    return {
        "seat": seat.seat,
        "name": seat.info.name,
        "team": seat.info.team,
        "customers_reached": seat.customers_reached,
        "effective": seat.effective,
        "calls": [
            {
                "time": call.at.isoformat(timespec="seconds"),
                "direction": call.direction,
                "number": call.number,
                "outcome": call.outcome,
                "talk_seconds": round(call.talk_seconds, 3),
                "effective": call.effective,
            }
            for call in seat.calls
        ],
        "follow_ups": [
            {
                "time": v.claim.at.astimezone(_zone(log)).isoformat(timespec="seconds"),
                "number": v.claim.number_masked,
                "class": v.claim.klass,
                "verified": v.verified,
                "reason": v.reason,
            }
            for v in seat.follow_ups
        ],
    }


def to_json(log: WorkLog) -> str:
    document = {
        "date": log.day.isoformat(),
        "timezone": log.timezone,
        "threshold_seconds": log.threshold,
        "seats": [_record(seat, log) for seat in log.seats],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def to_csv(log: WorkLog) -> str:
    """One row per call and per follow-up claim."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for seat in log.seats:
        record = _record(seat, log)
        head = [log.day.isoformat(), seat.seat, seat.info.team]
        for c in record["calls"]:
            writer.writerow(
                [
                    *head,
                    "call",
                    c["time"],
                    c["direction"],
                    c["number"],
                    c["outcome"],
                    c["talk_seconds"],
                    str(c["effective"]).lower(),
                    "",
                    "",
                    "",
                ]
            )
        for f in record["follow_ups"]:
            writer.writerow(
                [
                    *head,
                    "follow_up",
                    f["time"],
                    "",
                    f["number"],
                    "",
                    "",
                    "",
                    f["class"] or "",
                    str(f["verified"]).lower(),
                    f["reason"] or "",
                ]
            )
    return out.getvalue()


_STYLE = """
body { font-family: system-ui, "PingFang SC", "Microsoft YaHei", sans-serif; margin: 2em; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; } th { background: #f0f0f0; }
"""


def _table(labels: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    head = "<tr>" + "".join(f"<th>{escape(x)}</th>" for x in labels) + "</tr>"
    body = ["<tr>" + "".join(f"<td>{escape(x)}</td>" for x in row) + "</tr>" for row in rows]
    return ["<table>", head, *body, "</table>"]


def to_html(log: WorkLog) -> str:
    heading = escape(title(log))
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{heading}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{heading}</h1>",
    ]
    for seat in log.seats:
        parts.append(f"<h2>{escape(summary(seat))}</h2>")
        if seat.calls:
            parts += _table(CALL_LABELS, [_call_cells(call) for call in seat.calls])
        if seat.follow_ups:
            parts += _table(CLAIM_LABELS, [_claim_cells(v, log) for v in seat.follow_ups])
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
