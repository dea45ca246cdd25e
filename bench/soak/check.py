"""The store after a soak against the simulator's truth: every call, every second, no row lost.

Calls and their segments are read back with the store's own queries and summed per seat by
:class:`DailyTallies`, as ``ctid report`` does.  The comparison follows the rules of
``tests/truth.py`` (used by ``tests/test_simulate.py``): each linkedid once, the same count,
direction, number, outcome and per-seat segments, seconds within 0.01 s; per seat the same
call counts and talk, hold and seat-to-seat seconds.  Problems never show a phone number.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from ctid.privacy import mask_number
from ctid.store.engine import make_engine
from ctid.store.queries import load_calls, load_internal
from ctid.store.schema import call_segments, calls, cdrs, gaps, internal_calls, internal_talk
from ctid.tracker.model import Call
from ctid.tracker.tallies import DailyTallies, SeatTally

TOLERANCE_S = 0.01
OUTCOME_DISPOSITIONS = {
    "answered": {"ANSWERED"},
    "no_answer": {"NO ANSWER"},
    "busy": {"BUSY"},
    "congestion": {"CONGESTION"},
    "failed": {"NO ANSWER", "FAILED", "CONGESTION"},
    "abandoned": {"NO ANSWER"},
}
"""A stored outcome → the CDR dispositions of such a call (the truth's per-call disposition)."""
SEAT_COUNTS = ("outbound", "inbound", "answered", "calls", "internal_calls")
SEAT_SECONDS = ("talk_seconds", "hold_seconds", "internal_talk_seconds")
_EVER = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(9999, 1, 1, tzinfo=dt.UTC))


@dataclass(frozen=True, slots=True)
class StoreReadBack:
    calls: list[Call]
    seats: dict[str, SeatTally]
    rows: dict[str, int]


@dataclass(frozen=True, slots=True)
class Accounting:
    calls_generated: int
    calls_stored: int
    internal_calls_generated: int
    internal_calls_stored: int
    talk_seconds_generated: float
    talk_seconds_stored: float
    rows: dict[str, int]
    problems: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.problems


def read_store(database: Path) -> StoreReadBack:
    engine = make_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            stored = load_calls(connection, *_EVER)
            internal = load_internal(connection, *_EVER)
            tables = (calls, call_segments, internal_talk, internal_calls, cdrs, gaps)
            rows = {
                t.name: int(connection.execute(select(func.count()).select_from(t)).scalar_one())
                for t in tables
            }
    finally:
        engine.dispose()
    tallies = DailyTallies(ZoneInfo("UTC"))
    for call in stored:
        tallies.add_call(call)
    for effect in internal:
        tallies.apply(effect)
    return StoreReadBack(stored, tallies.totals(), rows)


def account(truth: dict[str, Any], stored: StoreReadBack) -> Accounting:
    expected = truth["expected"]
    per_seat = expected["per_seat"]
    return Accounting(
        calls_generated=len(expected["per_call"]),
        calls_stored=len(stored.calls),
        internal_calls_generated=int(sum(s["internal_calls_placed"] for s in per_seat.values())),
        internal_calls_stored=stored.rows["internal_calls"],
        talk_seconds_generated=round(sum(s["talk_seconds"] for s in per_seat.values()), 6),
        talk_seconds_stored=round(sum(t.talk_seconds for t in stored.seats.values()), 6),
        rows=stored.rows,
        problems=call_problems(truth, stored.calls) + seat_problems(truth, stored.seats),
    )


def call_problems(truth: dict[str, Any], stored: list[Call]) -> list[str]:
    problems: list[str] = []
    by_id = {c.linkedid: c for c in stored}
    if len(by_id) != len(stored):
        problems.append("a linkedid was stored twice")
    expected = truth["expected"]["per_call"]
    if len(stored) != len(expected):
        problems.append(f"{len(stored)} calls stored, {len(expected)} generated")
    for want in expected:
        got = by_id.get(want["linkedid"])
        if got is None:
            problems.append(f"{want['linkedid']}: not stored")
        else:
            problems.extend(f"{want['linkedid']}: {p}" for p in _call_differences(want, got))
    return problems


def _call_differences(want: dict[str, Any], got: Call) -> list[str]:
    found: list[str] = []
    if str(got.direction) != want["direction"]:
        found.append(f"direction {got.direction}, generated {want['direction']}")
    # The store keeps the number masked (and hashed): compare what it can show.
    if got.remote != mask_number(want["number"]):
        found.append("customer number differs")  # never print the numbers themselves
    disposition = want["disposition"]
    if disposition != "NO_CDR" and disposition not in OUTCOME_DISPOSITIONS[str(got.outcome)]:
        found.append(f"outcome {got.outcome}, CDR disposition {disposition}")
    got_segments = sorted(
        (s.seat, s.seat_channel, s.talk_seconds, s.hold_seconds) for s in got.segments.values()
    )
    want_segments = sorted(
        (s["seat"], s["seat_channel"], s["talk_seconds"], s["hold_seconds"])
        for s in want["segments"]
    )
    if [g[:2] for g in got_segments] != [w[:2] for w in want_segments]:
        found.append(f"segments on {[g[:2] for g in got_segments]}, generated {want_segments}")
        return found
    for g, w in zip(got_segments, want_segments, strict=True):
        if abs(g[2] - w[2]) > TOLERANCE_S or abs(g[3] - w[3]) > TOLERANCE_S:
            found.append(f"seat {g[0]} talk/hold {g[2]:.3f}/{g[3]:.3f}, generated {w[2]}/{w[3]}")
    if any(s.get("open_at_connection_end") for s in want["segments"]) and not got.interrupted:
        found.append("open at connection end but not marked interrupted")
    return found


def seat_problems(truth: dict[str, Any], seats: dict[str, SeatTally]) -> list[str]:
    problems: list[str] = []
    for seat, want in seat_expectations(truth).items():
        got = seats.get(seat, SeatTally())
        for name in SEAT_COUNTS:
            if getattr(got, name) != want[name]:
                problems.append(
                    f"seat {seat} {name}: stored {getattr(got, name)}, want {want[name]}"
                )
        for name in SEAT_SECONDS:
            if abs(getattr(got, name) - want[name]) > TOLERANCE_S:
                problems.append(
                    f"seat {seat} {name}: stored {getattr(got, name):.3f}, want {want[name]:.3f}"
                )
    unexpected = sorted(
        s for s, t in seats.items() if t.calls and s not in truth["expected"]["per_seat"]
    )
    problems.extend(f"seat {seat}: not on the simulated floor" for seat in unexpected)
    return problems


def seat_expectations(truth: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per seat, what :class:`SeatTally` must hold; ``calls`` = placed + others talked in.

    One pass over the calls (``tests/truth.py`` asks each seat about each call, which is
    fine for ten seats, not for thousands).
    """
    talked_not_placed: Counter[str] = Counter()
    for call in truth["expected"]["per_call"]:
        segments = call["segments"]
        placer = segments[0]["seat"] if call["direction"] == "outbound" and segments else None
        talked_not_placed.update({s["seat"] for s in segments} - {placer})
    return {
        seat: {
            "outbound": exp["calls_placed"],
            "inbound": exp["inbound_answered"],
            "answered": exp["answered"],
            "calls": exp["calls_placed"] + talked_not_placed[seat],
            "internal_calls": exp["internal_calls_placed"],
            "talk_seconds": exp["talk_seconds"],
            "hold_seconds": exp["hold_seconds"],
            "internal_talk_seconds": exp["internal_talk_seconds"],
        }
        for seat, exp in truth["expected"]["per_seat"].items()
    }
