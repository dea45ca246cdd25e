"""``ctid report daily|weekly|monthly``: per-seat results from the store, as a leaderboard.

Seats are ranked by talk time, then effective calls (ties share a rank: 1, 2, 2, 4).
``attainment`` is a hook for quotas (a later issue): a callable giving a seat's fraction of
its target for the period, or ``None`` — the column is there, empty, until quotas exist.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ctid.report import display_width
from ctid.store.directory import SeatInfo
from ctid.tracker.tallies import SeatTally

PeriodKind = Literal["daily", "weekly", "monthly"]


@dataclass(frozen=True, slots=True)
class Period:
    kind: PeriodKind
    first: dt.date
    last: dt.date


def period_for(kind: PeriodKind, day: dt.date) -> Period:
    """The day itself, its ISO week (Monday–Sunday) or its calendar month."""
    if kind == "daily":
        return Period(kind, day, day)
    if kind == "weekly":
        monday = day - dt.timedelta(days=day.weekday())
        return Period(kind, monday, monday + dt.timedelta(days=6))
    first = day.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return Period(kind, first, following - dt.timedelta(days=1))


Attainment = Callable[[str, Period, SeatTally], float | None]


@dataclass(frozen=True, slots=True)
class ReportRow:
    rank: int
    seat: str
    name: str
    team: str
    calls: int
    answered: int
    effective: int
    talk_seconds: float
    hold_seconds: float
    faxes: int
    attainment: float | None

    @property
    def talk_minutes(self) -> float:
        return self.talk_seconds / 60


def build_rows(
    period: Period,
    totals: Mapping[str, SeatTally],
    seats: Mapping[str, SeatInfo],
    *,
    team: str | None = None,
    attainment: Attainment | None = None,
) -> list[ReportRow]:
    """Every known seat (idle ones too: a leaderboard shows who did nothing), ranked."""
    names = sorted(set(totals) | set(seats))
    unranked = []
    for seat in names:
        info = seats.get(seat, SeatInfo(seat))
        if team is not None and info.team != team:
            continue
        t = totals.get(seat, SeatTally())
        score = attainment(seat, period, t) if attainment else None
        unranked.append((seat, info, t, score))
    unranked.sort(key=lambda item: (-item[2].talk_seconds, -item[2].effective, item[0]))
    rows: list[ReportRow] = []
    for position, (seat, info, t, score) in enumerate(unranked, start=1):
        previous = rows[-1] if rows else None
        tied = previous and (previous.talk_seconds, previous.effective) == (
            t.talk_seconds,
            t.effective,
        )
        rank = previous.rank if previous and tied else position
        rows.append(
            ReportRow(
                rank, seat, info.name, info.team, t.calls, t.answered, t.effective,
                t.talk_seconds, t.hold_seconds, t.faxes, score,
            )
        )  # fmt: skip
    return rows


CSV_COLUMNS = (
    "rank",
    "seat",
    "name",
    "team",
    "calls",
    "answered",
    "effective",
    "talk_minutes",
    "hold_minutes",
    "faxes",
    "attainment",
)


def _flat(row: ReportRow) -> dict[str, Any]:
    out = asdict(row)
    out["talk_minutes"] = round(row.talk_seconds / 60, 2)
    out["hold_minutes"] = round(row.hold_seconds / 60, 2)
    out["talk_seconds"] = round(row.talk_seconds, 3)
    out["hold_seconds"] = round(row.hold_seconds, 3)
    return out


def to_json(
    period: Period,
    rows: list[ReportRow],
    timezone: str,
    team: str | None,
    completeness: Mapping[str, float],
) -> str:
    document = {
        "period": {
            "kind": period.kind,
            "first": period.first.isoformat(),
            "last": period.last.isoformat(),
            "timezone": timezone,
        },
        "team": team,
        "completeness": {pbx: round(share, 6) for pbx, share in completeness.items()},
        "seats": [_flat(row) for row in rows],
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


def to_csv(rows: list[ReportRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        flat = _flat(row)
        writer.writerow(["" if flat[c] is None else flat[c] for c in CSV_COLUMNS])
    return out.getvalue()


def to_table(period: Period, rows: list[ReportRow], completeness: Mapping[str, float]) -> str:
    header = ("#", "seat", "name", "team", "calls", "answ", "eff", "talk min", "hold min",
              "fax", "attain")  # fmt: skip
    body = [
        (
            str(r.rank), r.seat, r.name, r.team, str(r.calls), str(r.answered),
            str(r.effective), f"{r.talk_minutes:.1f}", f"{r.hold_seconds / 60:.1f}",
            str(r.faxes), "" if r.attainment is None else f"{r.attainment:.0%}",
        )
        for r in rows
    ]  # fmt: skip
    lines = _align([header, *body], left={1, 2, 3})
    lines.insert(1, "-" * max((display_width(line) for line in lines), default=0))
    title = f"{period.kind} {period.first.isoformat()}"
    if period.last != period.first:
        title += f" .. {period.last.isoformat()}"
    # Only worth a line when an AMI gap means some calls may be missing from the numbers.
    lines += [
        f"{pbx}: AMI connected {share:.1%} of the period (calls in gaps are missing)"
        for pbx, share in completeness.items()
        if share < 1.0
    ]
    return "\n".join([title, *lines]) + "\n"


def _align(rows: list[tuple[str, ...]], left: set[int]) -> list[str]:
    widths = [max(display_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = []
        for i, cell in enumerate(r):
            fill = " " * (widths[i] - display_width(cell))
            cells.append(cell + fill if i in left else fill + cell)
        out.append("  ".join(cells).rstrip())
    return out
