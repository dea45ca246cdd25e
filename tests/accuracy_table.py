"""Print the agreement table of docs/accuracy.md: ``python -m tests.accuracy_table``."""

from __future__ import annotations

from ctid.replay import replay_streams
from ctid.tracker.tallies import SeatTally
from tests.truth import (
    call_mismatches,
    capture_names,
    capture_streams,
    load_truth,
    seat_expectations,
    seat_mismatches,
)


def main() -> None:
    print(
        "| capture | seats | calls (ctid / truth) | talk s (ctid / truth) "
        "| max Δ talk per seat | max Δ hold per seat | max Δ talk per segment | mismatches |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in capture_names():
        truth = load_truth(name)
        result = replay_streams(capture_streams(name))
        assert result.tallies is not None
        totals = result.tallies.totals()
        expected = seat_expectations(truth)
        d_talk = max(
            (
                abs(totals.get(s, SeatTally()).talk_seconds - e.talk_seconds)
                for s, e in expected.items()
            ),
            default=0.0,
        )
        d_hold = max(
            (
                abs(totals.get(s, SeatTally()).hold_seconds - e.hold_seconds)
                for s, e in expected.items()
            ),
            default=0.0,
        )
        by_id = {c.linkedid: c for c in result.calls}
        d_segment = 0.0
        for call in truth["expected"]["per_call"]:
            got = by_id.get(call["linkedid"])
            if got is None:
                continue
            mine = {s.seat_channel: s.talk_seconds for s in got.segments.values()}
            for seg in call["segments"]:
                d_segment = max(
                    d_segment, abs(mine.get(seg["seat_channel"], 0.0) - seg["talk_seconds"])
                )
        ours = sum(t.talk_seconds for t in totals.values())
        theirs = sum(e.talk_seconds for e in expected.values())
        problems = len(seat_mismatches(truth, totals)) + len(call_mismatches(truth, result.calls))
        want_calls = len(truth["expected"]["per_call"])
        cells = [
            name,
            str(len(expected)),
            f"{len(result.calls)} / {want_calls}",
            f"{ours:.3f} / {theirs:.3f}",
            *(f"{v:.3f}" for v in (d_talk, d_hold, d_segment)),
            str(problems),
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
