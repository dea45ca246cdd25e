"""Monthly recognition: the top seats by attainment and by effective calls (pure).

Per team and for the centre (human seats). Ties share a rank (1, 2, 2, 4) and a seat tied
with the last place shown is shown too: nobody is left out of recognition by the order of
seat ids. Seats with nothing to show (no target for the quota, no effective call) are not
ranked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Measure = Literal["attainment", "effective_calls"]
MEASURES: tuple[Measure, ...] = ("attainment", "effective_calls")
CENTRE = "centre"


@dataclass(frozen=True, slots=True)
class Contender:
    seat: str
    name: str
    team: str
    attainment: float | None
    """Of the recognised quota; ``None`` without a target."""
    effective_calls: int


@dataclass(frozen=True, slots=True)
class Placing:
    rank: int
    seat: str
    name: str
    team: str
    value: float


@dataclass(frozen=True, slots=True)
class Board:
    scope: str
    """A team name, or ``centre``."""
    measure: Measure
    placings: tuple[Placing, ...]


def leaderboards(contenders: Sequence[Contender], top: int) -> list[Board]:
    """For each team (sorted) and then the centre, a board per measure."""
    scopes = [*sorted({c.team for c in contenders}), CENTRE]
    return [
        Board(scope, measure, ranked(_in(contenders, scope), measure, top))
        for scope in scopes
        for measure in MEASURES
    ]


def _in(contenders: Sequence[Contender], scope: str) -> list[Contender]:
    return [c for c in contenders if scope in (CENTRE, c.team)]


def _value(contender: Contender, measure: Measure) -> float | None:
    if measure == "attainment":
        return contender.attainment
    return float(contender.effective_calls)


def ranked(contenders: Iterable[Contender], measure: Measure, top: int) -> tuple[Placing, ...]:
    scored = [(v, c) for c in contenders if (v := _value(c, measure)) is not None and v > 0]
    scored.sort(key=lambda item: (-item[0], item[1].seat))
    out: list[Placing] = []
    for position, (value, c) in enumerate(scored, start=1):
        rank = out[-1].rank if out and out[-1].value == value else position
        if rank > top:
            break
        out.append(Placing(rank, c.seat, c.name, c.team, value))
    return tuple(out)
