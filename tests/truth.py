"""Ground truth of the recorded captures and how ctid's results are compared with it."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctid.privacy import mask_number
from ctid.tracker.model import Call
from ctid.tracker.tallies import SeatTally

CAPTURES = Path(__file__).parent / "captures"
TOLERANCE_S = 0.01
"""The truth is rounded to milliseconds; ctid agrees within that (quotas need ±1 s)."""

# Outcome → the dispositions Asterisk's CDRs give such a call (truth's per-call disposition).
OUTCOME_DISPOSITIONS = {
    "answered": {"ANSWERED"},
    "no_answer": {"NO ANSWER"},
    "busy": {"BUSY"},
    "congestion": {"CONGESTION"},
    "failed": {"NO ANSWER", "FAILED", "CONGESTION"},
    "abandoned": {"NO ANSWER"},
}


def capture_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".ami.gz") for p in CAPTURES.glob("*.ami.gz") if ".part" not in p.name
    )


def capture_files(name: str) -> list[Path]:
    files = [CAPTURES / f"{name}.ami.gz"]
    part = 2
    while (CAPTURES / f"{name}.part{part}.ami.gz").exists():
        files.append(CAPTURES / f"{name}.part{part}.ami.gz")
        part += 1
    return files


def capture_streams(name: str) -> list[bytes]:
    return [gzip.decompress(path.read_bytes()) for path in capture_files(name)]


def load_truth(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        gzip.decompress((CAPTURES / f"{name}.truth.json.gz").read_bytes())
    )
    return data


@dataclass(frozen=True)
class SeatExpectation:
    outbound: int
    inbound: int
    answered: int
    calls: int
    internal_calls: int
    talk_seconds: float
    hold_seconds: float
    internal_talk_seconds: float


def seat_expectations(truth: dict[str, Any]) -> dict[str, SeatExpectation]:
    """Per-seat expectations; ``calls`` = calls placed plus other calls the seat talked in."""
    per_call = truth["expected"]["per_call"]
    out: dict[str, SeatExpectation] = {}
    for seat, exp in truth["expected"]["per_seat"].items():
        talked_not_placed = sum(
            1
            for call in per_call
            if any(s["seat"] == seat for s in call["segments"])
            and not (call["direction"] == "outbound" and call["segments"][0]["seat"] == seat)
        )
        out[seat] = SeatExpectation(
            outbound=exp["calls_placed"],
            inbound=exp["inbound_answered"],
            answered=exp["answered"],
            calls=exp["calls_placed"] + talked_not_placed,
            internal_calls=exp["internal_calls_placed"],
            talk_seconds=exp["talk_seconds"],
            hold_seconds=exp["hold_seconds"],
            internal_talk_seconds=exp["internal_talk_seconds"],
        )
    return out


def seat_mismatches(
    truth: dict[str, Any], seats: dict[str, SeatTally], tolerance: float = TOLERANCE_S
) -> list[str]:
    problems: list[str] = []
    for seat, want in seat_expectations(truth).items():
        got = seats.get(seat, SeatTally())
        for name in ("outbound", "inbound", "answered", "calls", "internal_calls"):
            if getattr(got, name) != getattr(want, name):
                problems.append(
                    f"{seat} {name}: got {getattr(got, name)}, want {getattr(want, name)}"
                )
        for name in ("talk_seconds", "hold_seconds", "internal_talk_seconds"):
            delta = abs(getattr(got, name) - getattr(want, name))
            if delta > tolerance:
                problems.append(
                    f"{seat} {name}: got {getattr(got, name):.3f}, want {getattr(want, name):.3f}"
                )
    extra = set(seats) - set(truth["expected"]["per_seat"])
    problems.extend(f"{seat}: unexpected seat" for seat in sorted(extra) if seats[seat].calls)
    return problems


def call_mismatches(
    truth: dict[str, Any],
    calls: list[Call],
    tolerance: float = TOLERANCE_S,
    *,
    numbers_masked: bool = False,
) -> list[str]:
    """``numbers_masked``: the calls come from the store, which shows numbers masked only."""
    problems: list[str] = []
    by_id = {c.linkedid: c for c in calls}
    if len(by_id) != len(calls):
        problems.append("a linkedid was reported twice")
    expected = truth["expected"]["per_call"]
    if len(calls) != len(expected):
        problems.append(f"{len(calls)} calls, want {len(expected)}")
    for want in expected:
        got = by_id.get(want["linkedid"])
        if got is None:
            problems.append(f"{want['linkedid']}: missing")
            continue
        label = want["linkedid"]
        if str(got.direction) != want["direction"]:
            problems.append(f"{label} direction {got.direction}, want {want['direction']}")
        number = mask_number(want["number"]) if numbers_masked else want["number"]
        if got.remote != number:
            problems.append(f"{label} number {got.remote!r}, want {number!r}")
        if (
            want["disposition"] != "NO_CDR"
            and want["disposition"] not in OUTCOME_DISPOSITIONS[str(got.outcome)]
        ):
            problems.append(f"{label} outcome {got.outcome}, disposition {want['disposition']}")
        got_segments = sorted(
            (s.seat, s.seat_channel, s.talk_seconds, s.hold_seconds) for s in got.segments.values()
        )
        want_segments = sorted(
            (s["seat"], s["seat_channel"], s["talk_seconds"], s["hold_seconds"])
            for s in want["segments"]
        )
        if [g[:2] for g in got_segments] != [w[:2] for w in want_segments]:
            problems.append(f"{label} segments {got_segments}, want {want_segments}")
            continue
        for g, w in zip(got_segments, want_segments, strict=True):
            if abs(g[2] - w[2]) > tolerance or abs(g[3] - w[3]) > tolerance:
                problems.append(
                    f"{label} {g[0]} talk/hold {g[2]:.3f}/{g[3]:.3f}, want {w[2]}/{w[3]}"
                )
        if any(s.get("open_at_connection_end") for s in want["segments"]) and not got.interrupted:
            problems.append(f"{label}: open at connection end but not marked interrupted")
    return problems
