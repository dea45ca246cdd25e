"""Violations, quota events and the end-of-day report on MQTT, against a real Mosquitto.

The violation tests run the daemon against the busy capture replayed over TCP (a dial to a
number on the do-not-call list); the quota test drives the floor's quota engine with an injected
clock through a working day.  Like ``tests/test_mqtt.py``, the tests marked ``mqtt`` need the
broker on 127.0.0.1:1883 (``scripts/ensure-mosquitto.sh``) and skip, saying so, without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import pytest

import ctid.floor
from ctid.ami.capture import load_capture
from ctid.ami.server import AmiReplayServer
from ctid.compliance import Action, Decision, Mode, Rule
from ctid.config import Settings
from ctid.daemon import run_daemon
from ctid.floor import Floor
from ctid.mqtt.violations import ViolationFeed
from ctid.policy import QuotaScheduler
from ctid.tracker.model import OutboundDial
from ctid.tracker.tallies import DailyTallies
from tests.test_compliance_tcp import BUSY_NUMBER, BUSY_SEAT_CHANNEL
from tests.test_mqtt import (
    _body,
    clear_retained,
    receive,
    running,
    until,
)
from tests.test_policy_engine import MONDAY, FakeClock, _Fixed, at, call
from tests.truth import CAPTURES

MASKED = "720*****04"
POLICY = Path(__file__).parent.parent / "examples" / "policy.toml"


def _mqtt(prefix: str, port: int) -> dict[str, Any]:
    return {
        "enabled": True,
        "port": port,
        "topic_prefix": prefix,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
    }


class Collected:
    """Every message under ``<prefix>/hq/``, by topic below it, in arrival order."""

    def __init__(self, prefix: str) -> None:
        self.base = f"{prefix}/hq/"
        self.messages: list[tuple[str, aiomqtt.Message]] = []

    def bodies(self, topic: str) -> list[dict[str, Any]]:
        return [_body(m) for t, m in self.messages if t == topic]

    def payloads(self) -> list[bytes]:
        return [m.payload for _, m in self.messages if isinstance(m.payload, bytes)]

    async def until(self, client: aiomqtt.Client, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(20):  # a hang guard: the condition is what is waited for
            async for message in client.messages:
                self.messages.append((str(message.topic).removeprefix(self.base), message))
                if done():
                    return


# --- violations -------------------------------------------------------------------------------


def _compliance_policy(tmp_path: Path, mode: str) -> Path:
    (tmp_path / "optouts.jsonl").write_text(
        f'{{"op": "add", "number": "+1{BUSY_NUMBER}", "ts": 0, "source": "t"}}\n'
    )
    policy = tmp_path / "compliance.toml"
    policy.write_text(
        'version = "w1"\n[calling_hours]\nmode = "off"\n[frequency]\nmode = "off"\n'
        f'[do_not_call]\nmode = "{mode}"\ndata_dir = "{tmp_path}"\n'
    )
    return policy


async def _daemon_on_busy_capture(
    broker: tuple[str, int], prefix: str, tmp_path: Path, *, mode: str, show_numbers: bool
) -> tuple[Collected, list[str]]:
    """The daemon with a DNC policy on the busy capture, until the flagged call has ended.

    Returns the messages and the names of the AMI actions the replay server received.
    """
    got = Collected(prefix)

    def flagged_call_ended() -> bool:
        flagged = got.bodies("violations/do_not_call")
        ended = {body["call_id"] for body in got.bodies("call/ended")}
        return bool(flagged) and flagged[0]["linkedid"] in ended

    async with aiomqtt.Client(*broker) as sub:
        await sub.subscribe(f"{prefix}/hq/#", qos=1)
        async with AmiReplayServer(load_capture(CAPTURES / "busy.ami.gz"), secret="s") as server:
            settings = Settings.model_validate(
                {
                    "site": {"name": "hq"},
                    "pbx": [{"name": "p1", "port": server.port, "secret": "s", "auth": "plain"}],
                    "http": {"enabled": False},
                    "compliance": _compliance_policy(tmp_path, mode),
                    "seats": [{"id": "1005", "team": "outbound"}],
                    "mqtt": _mqtt(prefix, broker[1]),
                    "show_numbers": show_numbers,
                }
            )
            task = asyncio.create_task(run_daemon(settings, handle_signals=False))
            try:
                await got.until(sub, flagged_call_ended)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                # Retained seat states and status of this run's prefix: leave the broker clean.
                topics = {got.base + topic for topic, _ in got.messages}
                await clear_retained(*broker, sorted(topics | {got.base + "status"}))
    return got, [action.name for action in server.actions_received]


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_an_enforced_dnc_dial_is_published_masked_with_its_hangup_outcome(
    broker: tuple[str, int], prefix: str, tmp_path: Path
) -> None:
    got, actions = await _daemon_on_busy_capture(
        broker, prefix, tmp_path, mode="enforce", show_numbers=False
    )
    assert "Hangup" in actions
    (violation,) = got.bodies("violations/do_not_call")
    assert violation["rule"] == "do_not_call"
    assert (violation["mode"], violation["action"]) == ("enforce", "hangup")
    assert violation["outcome"] == {"ami_action": "Hangup", "ok": True, "detail": "Channel Hungup"}
    assert (violation["seat"], violation["team"], violation["pbx"]) == ("1005", "outbound", "p1")
    assert violation["channel"] == BUSY_SEAT_CHANNEL
    assert violation["number"] == MASKED
    assert violation["policy_version"] == "w1"
    assert violation["reason"] == "on the do-not-call list"
    moment = dt.datetime.fromisoformat(violation["time"])
    assert moment.utcoffset() == dt.timedelta(0)
    assert moment.date() == dt.date(2026, 11, 23)  # busy.ami was recorded that day
    (ended,) = [b for b in got.bodies("call/ended") if b["call_id"] == violation["linkedid"]]
    assert ended["number"] == MASKED
    assert len(got.payloads()) > 3  # status, seat states, calls and the violation
    assert not [p for p in got.payloads() if BUSY_NUMBER.encode() in p]


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_warn_mode_publishes_the_violation_with_the_full_number_where_numbers_are_shown(
    broker: tuple[str, int], prefix: str, tmp_path: Path
) -> None:
    got, actions = await _daemon_on_busy_capture(
        broker, prefix, tmp_path, mode="warn", show_numbers=True
    )
    assert "Hangup" not in actions
    (violation,) = got.bodies("violations/do_not_call")
    assert (violation["mode"], violation["action"], violation["outcome"]) == ("warn", "warn", None)
    assert violation["number"] == BUSY_NUMBER
    assert violation["reason"] == "on the do-not-call list"


class _Offers:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], bool]] = []

    def offer(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> bool:
        self.sent.append((topic, payload, retain))
        return True


def _decision(number: str, *, linkedid: str | None = "L1", rule: Rule = Rule.FREQUENCY) -> Decision:
    return Decision(
        rule, Mode.OBSERVE, Action.NONE, "p1", 1795429860.5, "w1", "1005" if linkedid else None,
        number, "over the cap", linkedid, None, None,
    )  # fmt: skip


def test_two_numbers_dialled_in_one_call_are_each_shown_on_their_own_violation() -> None:
    offers = _Offers()
    feed = ViolationFeed(offers, {"1005": "outbound"}, show_numbers=True)
    for number in ("13800138000", "13900139000"):
        for sink in feed.sinks:
            sink(OutboundDial("p1", 1795429860.0, "1005", number, "U1", "L1"))
    feed(_decision("139******00"), None)
    feed(_decision("138******00"), None)
    assert [body["number"] for _, body, _ in offers.sent] == ["13900139000", "13800138000"]
    assert [topic for topic, _, retain in offers.sent if not retain] == ["violations/frequency"] * 2


def test_a_violation_with_no_call_has_no_number_and_numbers_stay_masked_by_default() -> None:
    offers = _Offers()
    feed = ViolationFeed(offers, {"1005": "outbound"})
    assert feed.sinks == []  # nothing extra on the event path when numbers are masked
    feed(_decision("", linkedid=None, rule=Rule.ABANDON_RATE), None)
    feed(_decision("138******00"), None)
    (abandon_topic, abandon, _), (_, masked, _) = offers.sent
    assert abandon_topic == "violations/abandon_rate"
    assert (abandon["number"], abandon["seat"], abandon["team"]) == (None, None, None)
    assert (masked["number"], masked["team"]) == ("138******00", "outbound")
    assert masked["time"] == "2026-11-23T10:31:00.500000+00:00"


# --- quota events and the end-of-day report ---------------------------------------------------

SHANGHAI = ZoneInfo("Asia/Shanghai")
SUNDAY = "2026-11-29"


def _quota_floor(prefix: str, port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Floor:
    """The floor with the example policy, its engine started on Monday 08:00 in Shanghai."""
    monkeypatch.setattr(ctid.floor, "SystemClock", lambda: _Fixed(at(MONDAY, 8)))
    settings = Settings.model_validate(
        {
            "site": {"name": "hq", "timezone": "Asia/Shanghai"},
            "pbx": [{"name": "p1", "port": 5038, "secret": "s"}],  # never connected
            "http": {"enabled": False},
            "policy": {"file": str(POLICY), "report_dir": str(tmp_path / "reports")},
            "mqtt": _mqtt(prefix, port),
        }
    )
    return Floor(settings, list(settings.pbx), DailyTallies(SHANGHAI), None)


def test_without_mqtt_the_floor_has_no_feeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctid.floor, "SystemClock", lambda: _Fixed(at(MONDAY, 8)))
    settings = Settings.model_validate(
        {
            "pbx": [{"name": "p1", "port": 5038, "secret": "s"}],  # never connected
            "policy": {"file": str(POLICY), "report_dir": str(tmp_path / "reports")},
            "compliance": _compliance_policy(tmp_path, "warn"),
            "show_numbers": True,
        }
    )
    floor = Floor(settings, list(settings.pbx), DailyTallies(SHANGHAI), None)
    assert floor.quota is not None
    assert floor.compliance is not None
    assert (floor.live.publisher, floor.quota_feed, floor.violation_feed) == (None, None, None)


def quota_day(floor: Floor) -> tuple[FakeClock, QuotaScheduler]:
    """Monday from 08:00 on a fake clock; at 09:20 seat 1001 (standard: 100 talk minutes, 120
    effective calls) makes 100 one-minute calls through the link's sinks: talk met, calls short."""
    assert floor.quota is not None
    sinks = floor.links[0].pipeline.sinks

    def morning() -> None:
        for n in range(100):
            effect = call("1001", at(MONDAY, 9, 20) + dt.timedelta(seconds=90 * n), 60.0)
            for sink in sinks:
                sink(effect)

    clock = FakeClock(at(MONDAY, 8), [(at(MONDAY, 9, 20), morning)])
    return clock, QuotaScheduler(floor.quota, clock, floor.on_quota_events, sleep=clock.sleep)


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_quota_events_arrive_on_their_topics_and_the_eod_report_is_retained(
    broker: tuple[str, int], prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    floor = _quota_floor(prefix, broker[1], tmp_path, monkeypatch)
    publisher = floor.live.publisher
    assert publisher is not None
    clock, scheduler = quota_day(floor)
    got = Collected(prefix)

    def grace_of_1001_and_9001() -> bool:
        return {"1001", "9001"} <= {b["seat"] for b in got.bodies("quota/grace_shortfall")}

    report_topic = f"{prefix}/hq/reports/eod"
    try:
        async with aiomqtt.Client(*broker) as sub:
            await sub.subscribe(f"{prefix}/hq/quota/#", qos=1)
            async with running(publisher):
                while clock.now() < at(MONDAY, 18, 31):
                    await scheduler.run_once()
                await got.until(sub, grace_of_1001_and_9001)
                await until(lambda: publisher.depth() == 0)  # the report is on the broker
        async with aiomqtt.Client(*broker) as late:
            await late.subscribe(report_topic, qos=1)
            (report_message,) = await receive(late, 1)
    finally:
        await clear_retained(*broker, [report_topic, f"{prefix}/hq/status"])

    (met,) = got.bodies("quota/quota_met")
    assert (met["kind"], met["seat"], met["team"], met["quota"]) == (
        "quota_met",
        "1001",
        "team-a",
        "talk_minutes",
    )
    assert (met["day"], met["site"], met["makeup_day"]) == ("2026-11-23", "shanghai", None)
    assert dt.datetime.fromisoformat(met["time"]).utcoffset() == dt.timedelta(0)
    behind = got.bodies("quota/behind_pace")
    assert {b["seat"] for b in behind} == {"1001", "1002", "1003", "9001"}
    first = next(b for b in behind if b["seat"] == "1001")
    assert first["time"] == "2026-11-23T03:45:00+00:00"  # the 11:45 check in Shanghai
    assert set(first["shortfall"]) == {"faxes", "follow_ups"}  # talk and calls ahead of pace
    eod = {b["seat"]: b for b in got.bodies("quota/eod_shortfall")}
    assert eod["1001"]["shortfall"] == {"effective_calls": 20.0, "faxes": 8.0, "follow_ups": 25.0}
    assert eod["1001"]["time"] == "2026-11-23T10:00:00+00:00"  # 18:00 in Shanghai
    grace = {b["seat"]: b for b in got.bodies("quota/grace_shortfall")}
    assert grace["1001"]["makeup_day"] == SUNDAY
    assert grace["9001"]["makeup_day"] is None  # robots make nothing up
    bodies = [_body(m) for _, m in got.messages]
    assert {b["policy_version"] for b in bodies} == {"2026-11"}

    assert report_message.retain
    report = _body(report_message)
    assert (report["day"], report["site"], report["policy_version"]) == (
        "2026-11-23",
        "shanghai",
        "2026-11",
    )
    assert report["time"] == "2026-11-23T09:50:00+00:00"  # 17:50 in Shanghai
    assert [team["team"] for team in report["teams"]] == ["team-a", "team-b"]
    (seat_1001,) = [row for row in report["seats"] if row["seat"] == "1001"]
    assert (seat_1001["talk_minutes"], seat_1001["effective_calls"]) == (100.0, 100.0)
    assert [row["seat"] for row in report["robots"]] == ["9001"]
    written = json.loads((tmp_path / "reports" / "quota-2026-11-23.json").read_text())
    assert report["teams"] == written["teams"]  # the same rows as the file
