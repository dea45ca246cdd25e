"""Render a replay's results: JSON (stable schema), CSV and a table for people."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from ctid.privacy import mask_number
from ctid.tracker.model import Call
from ctid.tracker.tallies import SeatTally

SEAT_COLUMNS = (
    "calls",
    "outbound",
    "inbound",
    "transfers_in",
    "answered",
    "effective",
    "talk_seconds",
    "hold_seconds",
    "faxes",
    "internal_calls",
    "internal_talk_seconds",
)


def _iso(ts: float | None, tz: ZoneInfo) -> str | None:
    return (
        None if ts is None else dt.datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")
    )


def _seconds(value: float) -> float:
    return round(value, 3)


def seat_row(tally: SeatTally) -> dict[str, float | int]:
    row = tally.as_dict()
    return {k: _seconds(v) if isinstance(v, float) else v for k, v in row.items()}


def call_row(call: Call, tz: ZoneInfo, show_numbers: bool) -> dict[str, Any]:
    segments = sorted(call.segments.values(), key=lambda s: s.start or 0.0)
    return {
        "linkedid": call.linkedid,
        "pbx": call.pbx,
        "direction": str(call.direction),
        "kind": "fax" if call.fax else "voice",
        "seat": call.seat,
        "remote": mask_number(call.remote, show=show_numbers),
        "started_at": _iso(call.started_at, tz),
        "answered_at": _iso(call.answered_at, tz),
        "ended_at": _iso(call.ended_at, tz),
        "outcome": str(call.outcome) if call.outcome else None,
        "cause": call.cause,
        "ring_seconds": None if call.ring_seconds is None else _seconds(call.ring_seconds),
        "talk_seconds": _seconds(call.talk_seconds),
        "hold_seconds": _seconds(call.hold_seconds),
        "interrupted": call.interrupted,
        "segments": [
            {
                "seat": s.seat,
                "talk_seconds": _seconds(s.talk_seconds),
                "hold_seconds": _seconds(s.hold_seconds),
            }
            for s in segments
        ],
    }


def to_json(
    seats: Mapping[str, SeatTally], calls: Iterable[Call], tz: ZoneInfo, show_numbers: bool
) -> str:
    ordered = sorted(calls, key=lambda c: c.started_at)
    document = {
        "seats": {seat: seat_row(seats[seat]) for seat in sorted(seats)},
        "calls": [call_row(c, tz, show_numbers) for c in ordered],
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


def to_csv(seats: Mapping[str, SeatTally]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["seat", *SEAT_COLUMNS])
    for seat in sorted(seats):
        row = seat_row(seats[seat])
        writer.writerow([seat, *(row[c] for c in SEAT_COLUMNS)])
    return out.getvalue()


def to_table(seats: Mapping[str, SeatTally], names: Mapping[str, str] | None = None) -> str:
    """One row per seat with talk and hold in minutes, and a totals row."""
    names = names or {}
    header = ("seat", "name", "calls", "out", "in", "answered", "effective", "talk min", "hold min")
    total = SeatTally()
    rows: list[tuple[str, ...]] = []
    for seat in sorted(seats):
        tally = seats[seat]
        total.add(tally)
        rows.append(_table_row(seat, names.get(seat, ""), tally))
    rows.append(_table_row("TOTAL", "", total))
    widths = [max(display_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            _pad(cell, w, left=i < 2) for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines) + "\n"


def display_width(text: str) -> int:
    """Terminal columns: CJK names (张伟) take two per character."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def aligned_rows(rows: list[tuple[str, ...]], left: set[int]) -> list[str]:
    """Cells padded to their column's display width; columns in ``left`` left-aligned."""
    widths = [max(display_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = []
        for i, cell in enumerate(r):
            fill = " " * (widths[i] - display_width(cell))
            cells.append(cell + fill if i in left else fill + cell)
        out.append("  ".join(cells).rstrip())
    return out


def ruled(lines: list[str]) -> list[str]:
    """A rule under the first line (the header), as wide as the widest line."""
    lines.insert(1, "-" * max((display_width(line) for line in lines), default=0))
    return lines


def _pad(text: str, width: int, left: bool) -> str:
    fill = " " * (width - display_width(text))
    return text + fill if left else fill + text


def _table_row(seat: str, name: str, t: SeatTally) -> tuple[str, ...]:
    return (
        seat,
        name,
        str(t.calls),
        str(t.outbound),
        str(t.inbound),
        str(t.answered),
        str(t.effective),
        f"{t.talk_seconds / 60:.1f}",
        f"{t.hold_seconds / 60:.1f}",
    )
