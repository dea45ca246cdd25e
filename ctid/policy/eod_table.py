"""The end-of-day report (its JSON document, as the daemon serves it) as a terminal table."""

from __future__ import annotations

from typing import Any

from ctid.report import aligned_rows, ruled

HEADER = ("team", "seat", "name", "tier", "talk min", "eff calls", "faxes", "follow-ups",
          "talk %", "calls %", "status", "fine")  # fmt: skip


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def _seat_cells(row: dict[str, Any]) -> tuple[str, ...]:
    return (
        row["team"], row["seat"], row["name"], row["tier"],
        f"{row['talk_minutes']:.1f}", f"{row['effective_calls']:g}", f"{row['faxes']:g}",
        f"{row['follow_ups']:g}", _percent(row["attainment_talk_minutes"]),
        _percent(row["attainment_effective_calls"]), row["status"], f"{row['fine']:g}",
    )  # fmt: skip


def eod_table(document: dict[str, Any]) -> str:
    """Seats by team, then robots, then one line per team total."""
    lines = ruled(
        aligned_rows([HEADER, *map(_seat_cells, document["seats"])], left={0, 1, 2, 3, 10})
    )
    if document["robots"]:
        robots = [_seat_cells(row) for row in document["robots"]]
        lines += ["", "robots (not in the team totals)", *aligned_rows(robots, left={0, 1, 2, 3})]
    currency = document["currency"]
    lines.append("")
    for team in document["teams"]:
        talk = team["actuals"].get("talk_minutes", 0.0)
        target = team["targets"].get("talk_minutes")
        of = f" of {target:g}" if target else ""
        lines.append(
            f"team {team['team']} ({team['leader'] or 'no leader'}): {talk:.1f}{of} talk min, "
            f"{team['status']}, fines {team['fine']:g} {currency}"
        )
    return f"quota report as of {document['generated_at']}\n" + "\n".join(lines) + "\n"
