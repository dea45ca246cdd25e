"""bench.remap: a remapped copy of a capture is the same traffic on other seats and calls."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from bench.remap import copies, fill, remap, seat_id, template
from ctid.ami.codec import AmiCodec, Message
from ctid.ami.events import TRACKED_EVENTS
from ctid.pipeline import PbxPipeline
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Call, CallEnded, Effect
from ctid.tracker.tallies import DailyTallies, SeatTally
from ctid.tracker.tracker import CallTracker
from tests.truth import capture_streams

CAPTURE = "mixed_busy_period"


def replay(data: bytes, expect_banner: bool = True) -> tuple[list[Call], dict[str, SeatTally]]:
    ended: list[Call] = []

    def collect(effect: Effect) -> None:
        if isinstance(effect, CallEnded):
            ended.append(effect.call)

    pipeline = PbxPipeline(
        CallTracker("pbx", EndpointDirectory()), DailyTallies(ZoneInfo("UTC")), [collect]
    )
    codec = AmiCodec(expect_banner=expect_banner, keep_events=TRACKED_EVENTS)
    pipeline.on_messages([m for m in codec.feed(data) if isinstance(m, Message)], 0.0)
    return ended, pipeline.tallies.totals()


@pytest.fixture(scope="module")
def original() -> bytes:
    return capture_streams(CAPTURE)[0]


def test_a_copy_has_the_same_calls_and_tallies_on_renamed_seats(original: bytes) -> None:
    calls, seats = replay(original)
    copy_calls, copy_seats = replay(remap(original, 7))
    assert len(copy_calls) == len(calls) == 95
    renamed = {seat_id(7, int(seat)): tally for seat, tally in seats.items()}
    assert copy_seats == renamed
    talk = sorted(round(c.talk_seconds, 6) for c in calls)
    assert sorted(round(c.talk_seconds, 6) for c in copy_calls) == talk


def test_copies_share_no_call_channel_or_bridge(original: bytes) -> None:
    a, b = remap(original, 1), remap(original, 2)
    calls_a, _ = replay(a)
    calls_b, _ = replay(b)
    assert not {c.linkedid for c in calls_a} & {c.linkedid for c in calls_b}
    channels = [s.seat_channel for c in calls_a for s in c.segments.values()]
    assert not set(channels) & {s.seat_channel for c in calls_b for s in c.segments.values()}
    assert b"BridgeUniqueid: 0001" in a
    assert b"BridgeUniqueid: 0001" not in b


def test_interleaved_copies_are_independent_calls(original: bytes) -> None:
    calls, seats = replay(b"".join(copies(original, 3)), expect_banner=False)
    assert len(calls) == 3 * 95
    assert len(seats) == 3 * len(replay(original)[1])


def test_template_fills_like_remap_and_keeps_every_frame_length(original: bytes) -> None:
    pattern = template(original)
    assert fill(pattern, 5) == remap(original, 5)
    assert len(fill(pattern, 5)) == len(fill(pattern, 321))
    with pytest.raises(ValueError, match="copy must be"):
        fill(pattern, 900)
