"""The quota engine agrees with the tracker's own tallies on a real recorded capture."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctid.policy import Policy, QuotaEngine
from ctid.replay import replay_streams
from ctid.tracker.model import CallEnded
from tests.truth import capture_streams

TALK_QUOTA_MINUTES = 100

# One replay, in the order calls ended, for the order-independence property.
_MIXED = replay_streams(capture_streams("mixed_busy_period"))
_DAY = dt.date(2026, 11, 23)
_UTC_POLICY = Policy.model_validate(
    {
        "version": "test",
        "sites": {"floor": {"timezone": "UTC"}},
        "tiers": [{"name": "standard", "quotas": {"talk_minutes": TALK_QUOTA_MINUTES}}],
    }
)
_IN_ORDER = QuotaEngine(_UTC_POLICY, {}, start=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
for _call in _MIXED.calls:
    _IN_ORDER.apply(CallEnded(_call))


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "UTC"])
def test_talk_attainment_is_tracker_talk_over_quota_for_every_seat(zone: str) -> None:
    policy = Policy.model_validate(
        {
            "version": "test",
            "sites": {"floor": {"timezone": zone, "workdays": ["monday"]}},
            "tiers": [{"name": "standard", "quotas": {"talk_minutes": TALK_QUOTA_MINUTES}}],
        }
    )
    result = replay_streams(capture_streams("mixed_busy_period"), tz=ZoneInfo(zone))
    assert result.tallies is not None
    engine = QuotaEngine(policy, {}, start=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    for ended in result.calls:
        engine.apply(CallEnded(ended))
    checked = 0
    for day, seats in result.tallies.days.items():
        noon = dt.datetime.combine(day, dt.time(12), tzinfo=ZoneInfo(zone))
        for seat, tally in seats.items():
            progress = engine.evaluate(seat, noon).quotas["talk_minutes"]
            want = tally.talk_seconds / (TALK_QUOTA_MINUTES * 60)
            assert progress.attainment == pytest.approx(want, rel=1e-9), seat
            actuals = engine.actuals(seat, day)
            assert actuals.get("effective_calls", 0) == tally.effective, seat
            assert actuals.get("dials", 0) == tally.outbound, seat
            assert actuals.get("faxes", 0) == tally.faxes, seat
            checked += 1
    assert checked == 10


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False))
def test_counters_do_not_depend_on_the_order_calls_end_in(rng: random.Random) -> None:
    calls = list(_MIXED.calls)
    rng.shuffle(calls)
    shuffled = QuotaEngine(_UTC_POLICY, {}, start=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    for ended in calls:
        shuffled.apply(CallEnded(ended))
    for seat in _IN_ORDER.seat_ids():
        got, want = shuffled.actuals(seat, _DAY), _IN_ORDER.actuals(seat, _DAY)
        assert got.keys() == want.keys()
        assert all(got[q] == pytest.approx(want[q], rel=1e-12) for q in want)
