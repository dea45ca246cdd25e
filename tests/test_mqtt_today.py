"""``seat/<seat>/today``: unit tests with a recording publisher, and the daemon replaying a capture
against a real Mosquitto (skipped, saying so, without the broker on 127.0.0.1:1883)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import pytest

from ctid.ami.capture import load_capture
from ctid.ami.codec import parse_frame
from ctid.config import Settings
from ctid.mqtt.today import QUOTA_SWEEP_SECONDS, EngineTodayQuotas, QuotaFigures, SeatTodayFeed
from ctid.pipeline import PbxPipeline
from ctid.policy import QuotaEngine
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker
from tests.mqtt_support import SITE, Inbox, clear_prefix, mqtt_settings
from tests.test_daemon import running
from tests.test_mqtt import receive
from tests.test_policy_engine import MONDAY, POLICY, SEATS, at
from tests.truth import CAPTURES

UTC = ZoneInfo("UTC")
CAPTURE = CAPTURES / "answered_customer_hangup.ami.gz"
TALK_SECONDS = 12.022
"""What the tracker measures for seat 1001 in that capture (tests/test_mqtt.py checks it too)."""


class _Offers:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], bool]] = []
        self.accept = True

    def offer(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> bool:
        if self.accept:
            self.sent.append((topic, payload, retain))
        return self.accept

    def take(self) -> dict[str, dict[str, Any]]:
        """Topic → body of what was sent since the last take."""
        sent, self.sent = self.sent, []
        assert all(retain for _, _, retain in sent)
        return {topic: body for topic, body, _ in sent}


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _replayed(feed: SeatTodayFeed, tallies: DailyTallies) -> float:
    """The capture through a pipeline that has ``feed`` as an effect sink; returns its end."""
    pipeline = PbxPipeline(CallTracker("pbx1", EndpointDirectory()), tallies, [feed])
    frames = load_capture(CAPTURE).events
    for frame in frames:
        pipeline.on_messages([parse_frame(frame.raw)], frame.timestamp or 0.0)
    return max(frame.timestamp or 0.0 for frame in frames)


def test_a_finished_call_republishes_only_the_seats_it_touched() -> None:
    tallies, offers = DailyTallies(UTC), _Offers()
    start = min(f.timestamp for f in load_capture(CAPTURE).events if f.timestamp is not None)
    clock = _Clock(start)
    feed = SeatTodayFeed(offers, tallies, {"1001": "red", "1002": "red"}, clock)
    assert feed.publish_changes() == 2  # the first tick: every configured seat, at zero
    assert offers.take()["seat/1001/today"]["talk_seconds"] == 0
    clock.now = _replayed(feed, tallies) + 1
    assert feed.publish_changes() == 1
    (topic, body), *_ = offers.take().items()
    assert topic == "seat/1001/today"
    assert body["talk_seconds"] == pytest.approx(TALK_SECONDS, abs=0.001)
    assert (body["calls"], body["outbound"], body["answered"], body["effective"]) == (1, 1, 1, 0)
    assert (body["team"], body["quotas"], body["quota_status"]) == ("red", None, None)
    assert feed.publish_changes() == 0


def test_seats_nobody_marked_are_not_looked_at() -> None:
    tallies, offers = DailyTallies(UTC), _Offers()
    noon = dt.datetime(2026, 11, 23, 12, tzinfo=UTC).timestamp()
    feed = SeatTodayFeed(offers, tallies, {"1001": "red"}, lambda: noon)
    feed.publish_changes()
    offers.take()
    tallies.tally(dt.date(2026, 11, 23), "1001").talk_seconds = 30.0  # behind the feed's back
    assert feed.publish_changes() == 0
    feed.mark("1001")
    assert feed.publish_changes() == 1
    assert offers.take()["seat/1001/today"]["talk_seconds"] == 30.0


def test_a_new_day_publishes_every_seat_again_at_zero() -> None:
    tallies, offers = DailyTallies(UTC), _Offers()
    day = dt.date(2026, 11, 23)
    clock = _Clock(dt.datetime(2026, 11, 23, 23, 59, tzinfo=UTC).timestamp())
    tallies.tally(day, "1001").calls = 4
    tallies.tally(day, "7777").calls = 1  # a seat met only in today's calls
    feed = SeatTodayFeed(offers, tallies, {"1001": "red", "1002": "red"}, clock)
    feed.publish_changes()
    assert {t: b["calls"] for t, b in offers.take().items()} == {
        "seat/1001/today": 4,
        "seat/1002/today": 0,
        "seat/7777/today": 1,
    }
    clock.now += 120
    assert feed.publish_changes() == 3
    sent = offers.take()
    assert {b["day"] for b in sent.values()} == {"2026-11-24"}
    assert {t: b["calls"] for t, b in sent.items()} == {
        "seat/1001/today": 0,
        "seat/1002/today": 0,
        "seat/7777/today": 0,
    }


def test_after_a_reconnect_and_a_full_queue_seats_are_sent_again() -> None:
    tallies, offers = DailyTallies(UTC), _Offers()
    feed = SeatTodayFeed(offers, tallies, {"1001": "red"}, lambda: 0.0)
    offers.accept = False
    assert feed.publish_changes() == 0
    assert feed.publish_changes() == 0  # still waiting for room in the queue
    offers.accept = True
    assert feed.publish_changes() == 1
    feed.republish()
    assert feed.publish_changes() == 1
    assert feed.publish_changes() == 0


class _Quotas:
    def __init__(self, seats: list[str]) -> None:
        self.all = seats
        self.status = "on_track"
        self.asked: list[str] = []
        self.adjusted: set[str] = set()

    def seats(self) -> Iterable[str]:
        return self.all

    def figures(self, seat: str, now: float) -> tuple[str, Mapping[str, QuotaFigures]]:
        self.asked.append(seat)
        return self.status, {"dials": QuotaFigures(100.0, 25.0, self.status)}

    def changed_seats(self) -> Iterable[str]:
        changed, self.adjusted = self.adjusted, set()
        return changed


def test_pace_status_is_looked_at_for_a_slice_of_the_seats_each_tick() -> None:
    seats = [f"s{n:03}" for n in range(120)]
    tallies, offers, quotas = DailyTallies(UTC), _Offers(), _Quotas(seats)
    feed = SeatTodayFeed(offers, tallies, {}, lambda: 0.0, interval=1.0)
    feed.quotas = quotas
    assert feed.publish_changes() == 120
    (body, *_) = offers.take().values()
    assert body["quotas"] == {
        "dials": {"target": 100.0, "actual": 25.0, "attainment": 0.25, "status": "on_track"}
    }
    quotas.asked.clear()
    assert feed.publish_changes() == 0
    assert len(quotas.asked) == 2  # 120 seats over QUOTA_SWEEP_SECONDS ticks of 1 s
    quotas.status = "behind"
    quotas.adjusted = {"s100"}
    published = sum(feed.publish_changes() for _ in range(int(QUOTA_SWEEP_SECONDS)))
    assert published == 120  # each seat once, with its new status
    assert {b["quota_status"] for b in offers.take().values()} == {"behind"}


def test_new_adjustments_mark_their_seat_once() -> None:
    engine = QuotaEngine(POLICY, SEATS, start=at(MONDAY, 8))
    quotas = EngineTodayQuotas(engine)
    assert set(quotas.changed_seats()) == set()
    engine.adjustments.leave("1002", MONDAY, by="mgr", at=at(MONDAY, 9), reason="sick")
    assert set(quotas.changed_seats()) == {"1002"}
    assert set(quotas.changed_seats()) == set()
    status, figures = quotas.figures("1002", at(MONDAY, 10).timestamp())
    assert (status, dict(figures)) == ("off", {})
    status, figures = quotas.figures("1001", at(MONDAY, 10).timestamp())
    assert figures["effective_calls"].target == 120


# --- the daemon, against Mosquitto --------------------------------------------------------------


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_today_is_retained_with_the_talk_seconds_the_tracker_measured(
    broker: tuple[str, int],
) -> None:
    prefix = f"ctid-test-{uuid.uuid4().hex[:12]}"
    settings = Settings.model_validate(
        {
            "site": {"name": SITE},
            "http": {"port": 0},
            "demo": {"capture": CAPTURE, "speed": 1000, "loop": False},  # retimed to today
            "seats": [{"id": "1001", "team": "red"}],
            "mqtt": mqtt_settings(prefix, broker[1]),
        }
    )
    topic = f"{prefix}/{SITE}/seat/1001/today"
    try:
        async with running(settings) as (floor, _url):
            async with aiomqtt.Client(*broker) as client:
                inbox = await Inbox(client, prefix).open()
                await inbox.until(lambda: bool(inbox.bodies("call/ended")))
                (ended,) = inbox.bodies("call/ended")
                await inbox.until(
                    lambda: any(b["calls"] == 1 for b in inbox.bodies("seat/1001/today"))
                )
            day = floor.tallies.local_day(ended["ended_at"])
            measured = floor.tallies.days[day]["1001"].talk_seconds
        async with aiomqtt.Client(*broker) as late:  # after the daemon is gone
            await late.subscribe(topic, qos=1)
            (message,) = await receive(late, 1)
    finally:
        await clear_prefix(*broker, prefix)
    body = inbox.bodies("seat/1001/today")[-1]
    assert message.retain
    assert isinstance(message.payload, bytes)
    assert json.loads(message.payload) == body
    assert body["talk_seconds"] == round(measured, 3) == pytest.approx(TALK_SECONDS, abs=0.001)
    assert body["talk_seconds"] == ended["talk_seconds"]
    assert (body["day"], body["seat"], body["team"]) == (day.isoformat(), "1001", "red")
    assert (body["calls"], body["answered"], body["effective"], body["quotas"]) == (1, 1, 0, None)
