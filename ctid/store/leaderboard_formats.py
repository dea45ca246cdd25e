"""The monthly leaderboards (:mod:`ctid.policy.leaderboard`) as JSON, table lines and HTML."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from ctid.policy.leaderboard import Board, Placing

_TITLES = {"attainment": "attainment", "effective_calls": "effective calls"}


def _shown(measure: str, value: float) -> str:
    return f"{value:.0%}" if measure == "attainment" else f"{value:.0f}"


def boards_record(boards: Sequence[Board]) -> list[dict[str, Any]]:
    return [
        {
            "scope": board.scope,
            "by": board.measure,
            "top": [
                {
                    "rank": p.rank,
                    "seat": p.seat,
                    "name": p.name,
                    "team": p.team,
                    "value": round(p.value, 6),
                }
                for p in board.placings
            ],
        }
        for board in boards
    ]


def _entries(board: Board) -> str:
    return ", ".join(
        f"{p.rank}. {p.seat}{f' {p.name}' if p.name else ''} {_shown(board.measure, p.value)}"
        for p in board.placings
    )


def boards_table(boards: Sequence[Board]) -> list[str]:
    """``leaderboard`` and one line per scope and measure; nothing without boards."""
    if not boards:
        return []
    lines = ["", "leaderboard (human seats; ties share a rank)"]
    for board in boards:
        lines.append(f"{board.scope} by {_TITLES[board.measure]}: {_entries(board) or '-'}")
    return lines


def boards_html(boards: Sequence[Board]) -> list[str]:
    if not boards:
        return []
    parts = ["<h2>Leaderboard (human seats)</h2>", "<table>"]
    parts.append("<tr><th>scope</th><th>by</th><th>rank</th><th>seat</th><th>name</th>"
                 "<th>value</th></tr>")  # fmt: skip
    for board in boards:
        placings: Sequence[Placing | None] = board.placings or [None]
        for p in placings:
            cells = [board.scope, _TITLES[board.measure]]
            cells += ["", "", "", "-"] if p is None else [
                str(p.rank), p.seat, p.name, _shown(board.measure, p.value)
            ]  # fmt: skip
            parts.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    return parts
