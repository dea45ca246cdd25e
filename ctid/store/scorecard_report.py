"""The monthly scorecard: points (:mod:`ctid.policy.scorecard`) and pay estimate
(:mod:`ctid.policy.pay`) per human seat of a monthly :class:`PeriodReport`, in four formats.

Rows keep the report's order (its ranking). The HTML page is self-contained and escapes every
text, as the period reports do.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from ctid.policy.pay import PayEstimate, estimate
from ctid.policy.schema import Policy
from ctid.policy.scorecard import Band, Points, band, score
from ctid.report import aligned_rows, ruled
from ctid.store.report_formats import money, percent, title
from ctid.store.reporting import PeriodReport


@dataclass(frozen=True, slots=True)
class ScoreRow:
    seat: str
    name: str
    team: str
    attainment: float | None
    missed_workdays: int
    falsified: int
    violations: Mapping[str, int]
    points: Points
    band: Band
    effective: int
    a_class: int
    b_class: int
    revenue: float
    pay: PayEstimate | None


@dataclass(frozen=True, slots=True)
class ScoreCard:
    heading: str
    policy: Policy
    rows: list[ScoreRow]


def build_scorecard(
    report: PeriodReport,
    policy: Policy,
    violations: Mapping[str, Mapping[str, int]],
    revenue: Mapping[str, float],
) -> ScoreCard:
    card, rows = policy.scorecard, []
    for row in report.seats:
        period = row.quota
        if period is None:  # a report built with a policy has a period for every seat
            continue
        found = dict(violations.get(row.seat, {}))
        points = score(card, period, found)
        earned = revenue.get(row.seat, 0.0)
        pay = None if policy.pay is None else estimate(policy.pay, row.effective, period, earned)
        rows.append(
            ScoreRow(
                row.seat, row.name, row.team, period.attainment[card.attainment_quota],
                period.missed_workdays, period.claims.falsified, found, points,
                band(card, points.total), row.effective, period.claims.a_class,
                period.claims.b_class, earned, pay,
            )
        )  # fmt: skip
    return ScoreCard(f"scorecard: {title(report)}", policy, rows)


def legend(scorecard: ScoreCard) -> list[str]:
    card, pay = scorecard.policy.scorecard, scorecard.policy.pay
    rules = ", ".join(f"{rule} {points:+g}" for rule, points in sorted(card.per_violation.items()))
    lines = [
        f"points: {card.base:g} base; {card.per_attainment_percent:+g} per 1 % of "
        f"{card.attainment_quota} attainment over 100 %; {card.per_missed_workday:+g} per "
        f"missed workday (a quota short that day); {card.per_falsified_follow_up:+g} per "
        f"falsified follow-up; violations: {rules or 'none counted'}",
        f"bands: bonus above {card.bonus_above:g}, deduction below {card.deduction_below:g}",
    ]
    if pay is not None:
        lines.append(
            f"pay estimate: {pay.base:g} + {pay.per_effective_call:g} x effective calls + "
            f"{pay.per_a_class:g} x A customers + {pay.per_b_class:g} x B customers + "
            f"{pay.revenue_share:.2%} of revenue ({scorecard.policy.fines.currency})"
        )
    return lines


def record(row: ScoreRow) -> dict[str, Any]:
    p = row.points
    return {
        "seat": row.seat,
        "name": row.name,
        "team": row.team,
        "attainment": None if row.attainment is None else round(row.attainment, 6),
        "missed_workdays": row.missed_workdays,
        "falsified_follow_ups": row.falsified,
        "violations": dict(sorted(row.violations.items())),
        "points": {
            "base": p.base,
            "attainment": p.attainment,
            "missed_workdays": p.missed_workdays,
            "falsified_follow_ups": p.falsified,
            "violations": p.violations,
            "total": round(p.total, 2),
        },
        "band": row.band,
        "pay": None
        if row.pay is None
        else {
            "effective_calls": row.effective,
            "a_class": row.a_class,
            "b_class": row.b_class,
            "revenue": round(row.revenue, 2),
            "estimate": round(row.pay.total, 2),
        },
    }


def to_json(card: ScoreCard) -> str:
    document = {"title": card.heading, "legend": legend(card),
                "seats": [record(row) for row in card.rows]}  # fmt: skip
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


CSV_COLUMNS = (
    "seat", "name", "team", "attainment", "missed_workdays", "falsified_follow_ups",
    "violations", "points", "band", "effective_calls", "a_class", "b_class", "revenue", "pay",
)  # fmt: skip


def _cells(row: ScoreRow) -> list[str]:
    violations = " ".join(f"{rule}={n}" for rule, n in sorted(row.violations.items()))
    pay = [] if row.pay is None else [money(row.revenue), money(row.pay.total)]
    return [
        row.seat, row.name, row.team, percent(row.attainment), str(row.missed_workdays),
        str(row.falsified), violations, f"{row.points.total:g}", row.band, str(row.effective),
        str(row.a_class), str(row.b_class), *pay,
    ]  # fmt: skip


def to_csv(card: ScoreCard) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in card.rows:
        cells = _cells(row)
        writer.writerow(cells + [""] * (len(CSV_COLUMNS) - len(cells)))
    return out.getvalue()


def _labels(card: ScoreCard) -> list[str]:
    labels = ["seat", "name", "team", "att%", "missed", "falsified", "violations", "points",
              "band", "eff", "A", "B"]  # fmt: skip
    return labels + (["revenue", "pay"] if card.policy.pay is not None else [])


def to_table(card: ScoreCard) -> str:
    body = [tuple(_cells(row)) for row in card.rows]
    lines = [
        card.heading,
        *ruled(aligned_rows([tuple(_labels(card)), *body], left={0, 1, 2, 6, 8})),
    ]
    return "\n".join([*lines, *legend(card)]) + "\n"


def to_html(card: ScoreCard) -> str:
    heading = escape(card.heading)
    head = "<tr>" + "".join(f"<th>{escape(x)}</th>" for x in _labels(card)) + "</tr>"
    body = [
        f'<tr class="{row.band}">' + "".join(f"<td>{escape(c)}</td>" for c in _cells(row)) + "</tr>"
        for row in card.rows
    ]
    style = (
        "body { font-family: system-ui, sans-serif; margin: 2em; } table { border-collapse: "
        "collapse; } th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; } "
        "tr.bonus td { background: #e2f5e2; } tr.deduction td { background: #fde2e2; }"
    )
    return (
        "\n".join(
            [
                "<!DOCTYPE html>",
                '<html><head><meta charset="utf-8">',
                f"<title>{heading}</title><style>{style}</style></head><body>",
                f"<h1>{heading}</h1>",
                "<table>",
                head,
                *body,
                "</table>",
                *(f"<p>{escape(line)}</p>" for line in legend(card)),
                "</body></html>",
            ]
        )
        + "\n"
    )


def render(card: ScoreCard, fmt: str) -> str:
    renderers = {"json": to_json, "csv": to_csv, "html": to_html, "table": to_table}
    return renderers[fmt](card)
