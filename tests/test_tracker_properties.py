"""Invariants of the tracker over the real captures (Hypothesis)."""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from ctid.replay import ReplayResult, replay_streams
from ctid.report import to_json
from tests.truth import capture_names, capture_streams

SMALL = [n for n in capture_names() if n != "mixed_busy_period"]
UTC = ZoneInfo("UTC")


@functools.cache
def _streams(name: str) -> tuple[bytes, ...]:
    return tuple(capture_streams(name))


def _document(result: ReplayResult) -> str:
    assert result.tallies is not None
    return to_json(result.tallies.totals(), result.calls, UTC, show_numbers=True)


@functools.cache
def _whole(name: str) -> str:
    return _document(replay_streams(list(_streams(name))))


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(SMALL), chunk=st.integers(min_value=1, max_value=5000))
def test_any_chunking_gives_identical_results(name: str, chunk: int) -> None:
    streams = list(_streams(name))
    if chunk < 64:
        streams = [s[:20_000] for s in streams]  # keep byte-by-byte feeding quick
        expected = _document(replay_streams(streams))
    else:
        expected = _whole(name)
    assert _document(replay_streams(streams, chunk_size=chunk)) == expected


@settings(max_examples=15, deadline=None)
@given(name=st.sampled_from(capture_names()), cut=st.floats(min_value=0.05, max_value=1.0))
def test_talk_never_negative_and_seat_totals_equal_their_segments(name: str, cut: float) -> None:
    # Cutting a stream anywhere is what a crash does; invariants must hold at every cut.
    streams = list(_streams(name))
    streams[-1] = streams[-1][: int(len(streams[-1]) * cut)]
    result = replay_streams(streams)
    assert result.tallies is not None
    per_seat: dict[str, float] = {}
    for call in result.calls:
        for segment in call.segments.values():
            assert segment.talk_seconds >= 0
            assert segment.hold_seconds >= 0
            if call.ended_at is not None:  # open calls reach the tallies when they end
                per_seat[segment.seat] = per_seat.get(segment.seat, 0.0) + segment.talk_seconds
    totals = result.tallies.totals()
    assert set(per_seat) <= set(totals)
    for seat, tally in totals.items():
        assert abs(tally.talk_seconds - per_seat.get(seat, 0.0)) < 1e-6
