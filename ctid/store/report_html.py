"""A :class:`~ctid.store.reporting.PeriodReport` as one self-contained HTML page.

Inline CSS, no scripts and nothing fetched, so the file can be opened anywhere or mailed as is.
Every piece of text goes through :func:`html.escape`: seat names and team names come from
configuration files and the database, and must never become markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ctid.policy.leaderboard import Board
from ctid.policy.period import Totals
from ctid.policy.schema import QuotaName
from ctid.store.leaderboard_formats import boards_html
from ctid.store.report_formats import (
    QUOTA_LABELS,
    amount,
    money,
    notes,
    percent,
    rollup_quotas,
    seat_quotas,
    title,
)
from ctid.store.reporting import PeriodReport, ReportRow

_STYLE = """
body { font-family: system-ui, "PingFang SC", "Microsoft YaHei", sans-serif; margin: 2em;
       color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f0f0f0; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.centre td { font-weight: bold; border-top: 2px solid #888; }
td.low { background: #fde2e2; } td.met { background: #e2f5e2; }
p.note { color: #a33; }
"""


def to_html(report: PeriodReport, boards: Sequence[Board] = ()) -> str:
    heading = escape(title(report))
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{heading}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{heading}</h1>",
        "<h2>Seats</h2>",
        _seat_table(report.seats, seat_quotas(report.seats)),
    ]
    if report.robots:
        parts += ["<h2>Robots</h2>", _seat_table(report.robots, seat_quotas(report.robots))]
    if report.quotas is not None:
        rollups = [*report.quotas.teams, report.quotas.centre]
        parts += [
            "<h2>Teams (human seats)</h2>",
            _totals_table(rollups, rollup_quotas(report.quotas)),
        ]
    parts += boards_html(boards)
    parts += [f'<p class="note">{escape(line)}</p>' for line in notes(report)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _cell(text: str, css: str = "") -> str:
    attribute = f' class="{css}"' if css else ""
    return f"<td{attribute}>{escape(text)}</td>"


def _attainment_cell(value: float | None) -> str:
    css = "n" if value is None else ("n met" if value >= 1 else "n low")
    return _cell(percent(value), css)


def _head(labels: Sequence[str]) -> str:
    return "<tr>" + "".join(f"<th>{escape(label)}</th>" for label in labels) + "</tr>"


def _seat_table(rows: list[ReportRow], quotas: list[QuotaName]) -> str:
    labels = ["#", "seat", "name", "team", "calls", "answered", "effective", "talk min",
              "hold min", "faxes", "dials", *(f"{QUOTA_LABELS[q]} %" for q in quotas)]  # fmt: skip
    with_quotas = bool(rows) and rows[0].quota is not None
    if with_quotas:
        labels += ["follow-ups claimed", "verified", "falsified", "fine"]
    lines = ["<table>", _head(labels)]
    for r in rows:
        cells = [_cell(str(r.rank), "n"), _cell(r.seat), _cell(r.name), _cell(r.team)]
        cells += [
            _cell(text, "n")
            for text in (str(r.calls), str(r.answered), str(r.effective),
                         f"{r.talk_minutes:.1f}", f"{r.hold_seconds / 60:.1f}", str(r.faxes),
                         str(r.dials))
        ]  # fmt: skip
        if r.quota is not None:
            attained = r.quota.attainment
            cells += [_attainment_cell(attained[q]) for q in quotas]
            claims = r.quota.claims
            counts = (claims.claimed, claims.verified, claims.falsified)
            cells += [_cell(str(n), "n") for n in counts]
            cells.append(_cell(money(r.quota.fine), "n"))
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _totals_table(rollups: list[Totals], quotas: list[QuotaName]) -> str:
    labels = ["team", "leader", "seats"]
    for q in quotas:
        labels += [f"{QUOTA_LABELS[q]} actual", f"{QUOTA_LABELS[q]} target", f"{QUOTA_LABELS[q]} %"]
    labels.append("fine")
    lines = ["<table>", _head(labels)]
    for index, totals in enumerate(rollups):
        css = ' class="centre"' if index == len(rollups) - 1 else ""
        cells = [_cell(totals.name), _cell(totals.leader), _cell(str(totals.seats), "n")]
        for q in quotas:
            cells += [
                _cell(amount(totals.actuals[q]), "n"),
                _cell(amount(totals.targets.get(q, 0.0)), "n"),
                _attainment_cell(totals.attainment[q]),
            ]
        cells.append(_cell(money(totals.fine), "n"))
        lines.append(f"<tr{css}>" + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)
