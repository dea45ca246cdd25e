"""Every recorded capture, processed offline, agrees with its ground truth."""

from __future__ import annotations

import pytest

from ctid.replay import replay_streams
from tests.truth import call_mismatches, capture_names, capture_streams, load_truth, seat_mismatches


@pytest.mark.parametrize("name", capture_names())
def test_offline_replay_matches_truth(name: str) -> None:
    truth = load_truth(name)
    result = replay_streams(capture_streams(name))
    assert result.tallies is not None
    assert seat_mismatches(truth, result.tallies.totals()) == []
    assert call_mismatches(truth, result.calls) == []


def test_every_capture_is_covered() -> None:
    assert len(capture_names()) == 24
