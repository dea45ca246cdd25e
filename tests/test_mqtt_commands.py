"""Commands over MQTT (``command/optout``, ``command/adjust``) against a real Mosquitto.

The daemon runs as in production: the adjustments reach the quota engine the HTTP API uses
(their effect is read off /metrics), an opt-out reaches the compliance guard and its journal (the
busy capture, replayed over TCP, then dials the number).  Like ``tests/test_mqtt.py``, tests that
need the broker on 127.0.0.1:1883 (``scripts/ensure-mosquitto.sh``) skip, saying so, without it;
the broker-restart and subscription tests start a private mosquitto of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from structlog.testing import capture_logs

from ctid.ami.capture import load_capture
from ctid.ami.server import AmiReplayServer
from ctid.compliance import ComplianceService, load_compliance
from ctid.config import Settings
from ctid.daemon import run_daemon
from ctid.floor import Floor
from ctid.mqtt.command_service import MqttCommands
from ctid.mqtt.commands import MAX_PAYLOAD_BYTES, CommandTopics, Rejected, read_request
from ctid.mqtt.publisher import Incoming, MqttPublisher
from ctid.mqtt.settings import MqttSettings
from ctid.policy import QuotaEngine
from tests.mqtt_support import (
    SITE,
    TOKEN,
    Inbox,
    clear_prefix,
    free_port,
    logged_broker_conf,
    mqtt_settings,
    subscriptions,
    with_commands,
)
from tests.test_api import every_day_policy, quota_target, today
from tests.test_compliance_tcp import BUSY_NUMBER
from tests.test_daemon import running
from tests.test_mqtt import mosquitto, until
from tests.test_policy_engine import MONDAY, POLICY, SEATS, at
from tests.truth import CAPTURES

TOPICS = CommandTopics("ctid", SITE)
MASKED = "720*****04"


def override(request_id: str, **extra: Any) -> dict[str, Any]:
    body = {
        "request_id": request_id,
        "token": TOKEN,
        "seat": "1001",
        "date": today(),
        "kind": "override",
        "quota": "effective_calls",
        "value": 50,
        "who": "mgr",
        "why": "short-staffed line",
    }
    return body | extra


def quota_daemon(tmp_path: Path, mqtt: dict[str, Any]) -> Settings:
    """The daemon on the demo capture with the example policy (every day a workday)."""
    return Settings.model_validate(
        {
            "site": {"name": SITE},
            "http": {"port": 0},
            "demo": {
                "capture": CAPTURES / "answered_customer_hangup.ami.gz",
                "speed": 1000,
                "loop": False,
            },
            "policy": {"file": every_day_policy(tmp_path)},
            "seats": [{"id": "1001", "team": "team-a"}, {"id": "1002", "team": "team-a"}],
            "mqtt": mqtt,
        }
    )


@contextlib.asynccontextmanager
async def quota_daemon_inbox(
    broker: tuple[str, int], prefix: str, tmp_path: Path, *extra_topics: str
) -> AsyncIterator[tuple[Floor, str, Inbox]]:
    settings = quota_daemon(tmp_path, with_commands(prefix, broker[1]))
    try:
        async with running(settings) as (floor, url), aiomqtt.Client(*broker) as client:
            inbox = await Inbox(client, prefix).open(*extra_topics)
            await inbox.online()
            yield floor, url, inbox
    finally:
        await clear_prefix(*broker, prefix)


# --- reading requests (pure) ------------------------------------------------------------------


def _read(name: str, body: Any, *, retained: bool = False) -> Any:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return read_request(TOPICS, f"ctid/{SITE}/command/{name}", payload, retained=retained)


def _rejected(name: str, body: Any, *, retained: bool = False) -> Rejected:
    with pytest.raises(Rejected) as caught:
        _read(name, body, retained=retained)
    return caught.value


def test_a_request_is_read_with_its_envelope_taken_out() -> None:
    request = _read("adjust", override("r-1"))
    assert (request.command, request.request_id, request.token) == ("adjust", "r-1", TOKEN)
    assert request.reply_topic == f"ctid/{SITE}/reply/r-1"
    assert set(request.body) == {"seat", "date", "kind", "quota", "value", "who", "why"}
    assert _read("optout", {"request_id": "r-2", "reply_to": "crm/7/inbox"}).reply_topic == (
        "crm/7/inbox"
    )


def test_unreadable_payloads_are_refused_with_nowhere_to_answer() -> None:
    oversize = _rejected("adjust", override("r-1", why="x" * MAX_PAYLOAD_BYTES))
    assert (oversize.kind, oversize.reply_topic) == ("oversize", None)
    assert oversize.message == "payload larger than 16384 bytes"
    for payload in (b"{not json", b"\xff\xfe", b"[1, 2]"):
        unreadable = _rejected("adjust", payload)
        assert (unreadable.kind, unreadable.reply_topic) == ("invalid_json", None)
    no_id = _rejected("adjust", override("r-1") | {"request_id": "a/b"})
    assert (no_id.kind, no_id.reply_topic) == ("envelope", None)


def test_a_request_without_an_id_is_answered_on_its_reply_to() -> None:
    rejected = _rejected("adjust", {"reply_to": "crm/inbox", "seat": "1001"})
    assert (rejected.kind, rejected.request_id, rejected.reply_topic) == (
        "envelope",
        None,
        "crm/inbox",
    )


@pytest.mark.parametrize(
    ("name", "extra", "retained", "kind", "message"),
    [
        ("reboot", {}, False, "unknown_command", "unknown command (known: adjust, optout)"),
        ("adjust", {}, True, "retained", "retained command ignored"),
        ("adjust", {"reply_to": "ctid/hq/status"}, False, "envelope", "reply_to: only ctid/hq/"),
        ("adjust", {"reply_to": "ctid/other/reply/x"}, False, "envelope", "reply_to: only"),
        ("adjust", {"reply_to": "crm/+/inbox"}, False, "envelope", "reply_to: not a topic"),
        ("adjust", {"reply_to": "$SYS/x"}, False, "envelope", "reply_to: not a topic"),
        ("adjust", {"token": 7}, False, "unauthorized", "missing or wrong token"),
    ],
)
def test_refused_requests_are_answered_on_the_default_reply_topic(
    name: str, extra: dict[str, Any], retained: bool, kind: str, message: str
) -> None:
    rejected = _rejected(name, override("r-9", **extra), retained=retained)
    assert (rejected.kind, rejected.request_id) == (kind, "r-9")
    assert rejected.reply_topic == f"ctid/{SITE}/reply/r-9"
    assert rejected.message.startswith(message)


def test_commands_cannot_be_switched_on_without_a_token() -> None:
    with pytest.raises(ValidationError, match="commands need command_token or command_token_env"):
        MqttSettings(enabled=True, commands=True)
    assert MqttSettings(commands=True, command_token_env="CTID_X").commands


# --- the handler, with a recording publisher --------------------------------------------------


class _Publisher:
    def __init__(self) -> None:
        self.subscribed: list[str] = []
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def subscribe(self, topic: str, handler: Any) -> None:
        self.subscribed.append(topic)

    def offer_to(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> bool:
        self.sent.append((topic, payload))
        return True


class _NoEngines:
    quota = None
    compliance = None


def _message(command: str, body: dict[str, Any] | bytes) -> Incoming:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Incoming(f"ctid/{SITE}/command/{command}", payload, False)


def test_refusals_are_answered_every_time_but_logged_once_per_reason() -> None:
    publisher = _Publisher()
    registry = CollectorRegistry()
    commands = MqttCommands(publisher, _NoEngines(), TOPICS, TOKEN, registry)
    assert publisher.subscribed == ["command/+"]
    with capture_logs() as logs:
        for n in range(3):
            commands.on_message(_message("adjust", override(f"r-{n}", token="wrong")))
        commands.on_message(_message("adjust", b"{"))
    assert [topic for topic, _ in publisher.sent] == [f"ctid/{SITE}/reply/r-{n}" for n in range(3)]
    assert publisher.sent[0][1] == {
        "request_id": "r-0",
        "ok": False,
        "error": "missing or wrong token",
    }
    rejected = [entry for entry in logs if entry["event"] == "mqtt_command_rejected"]
    assert [entry["reason"] for entry in rejected] == ["unauthorized", "invalid_json"]
    count = registry.get_sample_value(
        "ctid_mqtt_commands_total", {"command": "adjust", "outcome": "unauthorized"}
    )
    assert count == 3


class _Quota:
    def __init__(self, engine: QuotaEngine) -> None:
        self.quota = engine
        self.compliance = None


def test_the_same_request_sent_twice_is_applied_once_and_answered_twice() -> None:
    engine = QuotaEngine(POLICY, SEATS, start=at(MONDAY, 8))
    publisher, registry = _Publisher(), CollectorRegistry()
    commands = MqttCommands(publisher, _Quota(engine), TOPICS, TOKEN, registry)
    monday = MONDAY.isoformat()
    commands.on_message(_message("adjust", override("same", date=monday)))
    commands.on_message(_message("adjust", override("same", date=monday)))
    commands.on_message(_message("adjust", override("same", date=monday, value=70)))  # new body
    first, again, other = [reply for _, reply in publisher.sent]
    assert first == again
    assert (first["result"]["id"], other["result"]["id"]) == (1, 2)
    assert [(a.id, a.value) for a in engine.adjustments.history] == [(1, 50), (2, 70)]
    assert engine.targets("1001", MONDAY)["effective_calls"] == 70
    duplicates = registry.get_sample_value(
        "ctid_mqtt_commands_total", {"command": "adjust", "outcome": "duplicate"}
    )
    assert duplicates == 1


class _Compliance:
    def __init__(self, service: ComplianceService) -> None:
        self.quota = None
        self.compliance = service


def test_an_optout_joins_the_list_and_its_journal_queue_with_the_number_masked_elsewhere(
    tmp_path: Path,
) -> None:
    service = ComplianceService(
        load_compliance(_dnc_policy(tmp_path)), lambda pbx, uniqueid: None, {}, lambda: 0.0
    )
    publisher = _Publisher()
    commands = MqttCommands(
        publisher, _Compliance(service), TOPICS, TOKEN, CollectorRegistry(), clock=lambda: 5.0
    )
    body = {"token": TOKEN, "number": BUSY_NUMBER, "who": "crm", "why": "asked"}
    with capture_logs() as logs:
        commands.on_message(_message("optout", body | {"request_id": "o-1"}))
        commands.on_message(_message("optout", body | {"request_id": "o-2"}))
        commands.on_message(_message("optout", body | {"request_id": "o-3", "number": "12ab"}))
    assert [reply for _, reply in publisher.sent] == [
        {"request_id": "o-1", "ok": True, "result": {"number": MASKED, "added": True}},
        {"request_id": "o-2", "ok": True, "result": {"number": MASKED, "added": False}},
        {"request_id": "o-3", "ok": False, "error": "number: not a phone number"},
    ]
    assert BUSY_NUMBER in service.guard.optouts
    (entry,) = service.guard.optouts.drain()
    assert (entry.op, entry.number, entry.ts, entry.source) == (
        "add",
        f"+1{BUSY_NUMBER}",
        5.0,
        "mqtt:crm",
    )
    applied = [e for e in logs if e["event"] == "mqtt_command_applied"]
    assert [(e["number"], e["who"], e["why"]) for e in applied] == [(MASKED, "crm", "asked")] * 2
    assert BUSY_NUMBER not in repr(logs)


# --- the daemon, against Mosquitto --------------------------------------------------------------


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_an_adjust_command_changes_the_quota_target_and_is_answered_with_the_entry_id(
    broker: tuple[str, int], prefix: str, tmp_path: Path
) -> None:
    async with (
        quota_daemon_inbox(broker, prefix, tmp_path) as (floor, url, inbox),
        aiohttp.ClientSession() as http,
    ):
        assert await quota_target(http, url, "1001", "effective_calls") == 120
        reply = await inbox.ask("adjust", override("adj-1"))
        assert floor.quota is not None
        (entry,) = floor.quota.adjustments.history
        assert reply["request_id"] == "adj-1"
        assert reply["ok"] is True
        assert reply["result"]["id"] == entry.id
        assert (reply["result"]["kind"], reply["result"]["value"]) == ("override", 50)
        assert (entry.by, entry.reason) == ("mgr", "short-staffed line")
        assert await quota_target(http, url, "1001", "effective_calls") == 50

        def today_target() -> float | None:
            bodies = inbox.bodies("seat/1001/today")
            quotas = bodies[-1]["quotas"] if bodies else None
            return quotas["effective_calls"]["target"] if quotas else None

        await inbox.until(lambda: today_target() == 50)  # the adjustment marked the seat


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_invalid_commands_are_answered_with_the_field_error_and_change_nothing(
    broker: tuple[str, int], prefix: str, tmp_path: Path
) -> None:
    elsewhere = f"{prefix}-crm/inbox"
    async with quota_daemon_inbox(broker, prefix, tmp_path, elsewhere) as (floor, url, inbox):
        cases = {
            "no-value": (override("no-value", value=None), "value is required for kind override"),
            "seat": (override("seat", seat="7777"), "seat: unknown seat '7777'"),
            "date": (override("date", date="23/11/2026"), "date: "),
            "extra": (override("extra", colour="red"), "colour: "),
            "own-topic": (
                override("own-topic", reply_to=f"{prefix}/{SITE}/status"),
                f"reply_to: only {prefix}/{SITE}/reply/",
            ),
        }
        for request_id, (body, error) in cases.items():
            reply = await inbox.ask("adjust", body)
            assert (reply["request_id"], reply["ok"]) == (request_id, False)
            assert reply["error"].startswith(error)
        unknown = await inbox.ask("reboot", {"request_id": "unknown", "token": TOKEN})
        assert unknown["error"] == "unknown command (known: adjust, optout)"
        optout = {"request_id": "optout", "token": TOKEN, "number": BUSY_NUMBER, "who": "a"}
        assert (await inbox.ask("optout", optout | {"why": "b"}))["error"] == (
            "no compliance policy loaded: set compliance"
        )
        await inbox.send("adjust", override("routed", seat="7777", reply_to=elsewhere))
        await inbox.until(lambda: any(t == elsewhere for t, _ in inbox.messages))
        (routed,) = inbox.bodies(elsewhere)
        assert routed == {"request_id": "routed", "ok": False, "error": "seat: unknown seat '7777'"}
        assert floor.quota is not None
        assert floor.quota.adjustments.history == []
        async with aiohttp.ClientSession() as http:
            assert await quota_target(http, url, "1001", "effective_calls") == 120


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_a_wrong_or_missing_token_is_answered_with_an_error(
    broker: tuple[str, int], prefix: str, tmp_path: Path
) -> None:
    async with quota_daemon_inbox(broker, prefix, tmp_path) as (floor, _url, inbox):
        wrong = await inbox.ask("adjust", override("wrong", token="nope"))
        missing = await inbox.ask(
            "adjust", {k: v for k, v in override("missing").items() if k != "token"}
        )
        assert floor.quota is not None
        assert floor.quota.adjustments.history == []
    for reply in (wrong, missing):
        assert (reply["ok"], reply["error"]) == (False, "missing or wrong token")
    replies = [
        json.dumps(body)
        for topic in inbox.topics()
        if topic.startswith("reply/")
        for body in inbox.bodies(topic)
    ]
    assert len(replies) == 2
    assert not [reply for reply in replies if TOKEN in reply]


def _dnc_policy(tmp_path: Path) -> Path:
    policy = tmp_path / "compliance.toml"
    policy.write_text(
        'version = "w1"\n[calling_hours]\nmode = "off"\n[frequency]\nmode = "off"\n'
        f'[do_not_call]\nmode = "enforce"\ndata_dir = "{tmp_path}"\n'
    )
    return policy


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_an_optout_command_makes_the_next_dial_of_the_number_a_dnc_violation(
    broker: tuple[str, int], prefix: str, tmp_path: Path
) -> None:
    ami_port = free_port()  # the PBX comes up only once the opt-out is in
    settings = Settings.model_validate(
        {
            "site": {"name": SITE},
            "pbx": [{"name": "p1", "port": ami_port, "secret": "s", "auth": "plain"}],
            "http": {"enabled": False},
            "compliance": _dnc_policy(tmp_path),
            "seats": [{"id": "1005", "team": "outbound"}],
            "mqtt": with_commands(prefix, broker[1]),
        }
    )
    journal = tmp_path / "optouts.jsonl"
    daemon = asyncio.create_task(run_daemon(settings, handle_signals=False))
    try:
        async with aiomqtt.Client(*broker) as client:
            inbox = await Inbox(client, prefix).open()
            await inbox.online()
            body = {"number": BUSY_NUMBER, "who": "crm", "why": "asked on the phone"}
            reply = await inbox.ask("optout", {"request_id": "o-1", "token": TOKEN} | body)
            assert reply == {
                "request_id": "o-1",
                "ok": True,
                "result": {"number": MASKED, "added": True},
            }
            await until(lambda: journal.exists() and BUSY_NUMBER in journal.read_text())
            capture = load_capture(CAPTURES / "busy.ami.gz")
            async with AmiReplayServer(capture, port=ami_port, secret="s") as server:

                def flagged_call_ended() -> bool:
                    flagged = inbox.bodies("violations/do_not_call")
                    ended = {b["call_id"] for b in inbox.bodies("call/ended")}
                    return bool(flagged) and flagged[0]["linkedid"] in ended

                await inbox.until(flagged_call_ended)
    finally:
        daemon.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await daemon
        await clear_prefix(*broker, prefix)
    (violation,) = inbox.bodies("violations/do_not_call")
    assert (violation["mode"], violation["action"], violation["number"]) == (
        "enforce",
        "hangup",
        MASKED,
    )
    assert "Hangup" in [action.name for action in server.actions_received]
    (entry,) = [json.loads(line) for line in journal.read_text().splitlines()]
    assert (entry["op"], entry["number"], entry["source"]) == (
        "add",
        f"+1{BUSY_NUMBER}",
        "mqtt:crm",
    )
    published = [  # by ctid: the request itself, on command/optout, carries the number
        m.payload for t, m in inbox.messages if not t.startswith("command/")
    ]
    assert len(published) > 5  # status, seat states and figures, calls, the violation, the reply
    assert not [p for p in published if isinstance(p, bytes) and BUSY_NUMBER.encode() in p]


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_with_commands_off_ctid_subscribes_to_nothing(tmp_path: Path) -> None:
    port, conf, log = logged_broker_conf(tmp_path)
    client_id = f"ctid-{uuid.uuid4().hex[:8]}"
    mqtt = mqtt_settings("off", port, client_id=client_id)
    with mosquitto(port, conf):
        async with running(quota_daemon(tmp_path, mqtt)) as (floor, _url):
            async with aiomqtt.Client("127.0.0.1", port) as client:
                inbox = await Inbox(client, "off").open()
                await inbox.online()  # ctid would have subscribed before saying so
                await inbox.send("adjust", override("ignored"))
            assert floor.commands is None
    assert subscriptions(log, client_id) == []
    assert subscriptions(log, "no-such-client") == []


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_commands_work_again_after_the_broker_restarts(tmp_path: Path) -> None:
    port, conf, log = logged_broker_conf(tmp_path)
    client_id = f"ctid-{uuid.uuid4().hex[:8]}"
    settings = quota_daemon(tmp_path, with_commands("rs", port, client_id=client_id))
    async with running(settings) as (floor, _url):
        with mosquitto(port, conf):
            async with aiomqtt.Client("127.0.0.1", port) as client:
                inbox = await Inbox(client, "rs").open()
                await inbox.online()
                first = await inbox.ask("adjust", override("before"))
        with mosquitto(port, conf):  # a new broker: no sessions, no subscriptions, no retained
            async with aiomqtt.Client("127.0.0.1", port) as client:
                inbox = await Inbox(client, "rs").open()
                await inbox.online()
                second = await inbox.ask("adjust", override("after", value=40))
        reconnects = floor.registry.get_sample_value("ctid_mqtt_reconnects_total")
    assert (first["ok"], second["ok"]) == (True, True)
    assert second["result"]["id"] == first["result"]["id"] + 1
    assert subscriptions(log, client_id) == [f"rs/{SITE}/command/+"] * 2
    assert reconnects == 1


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_a_handler_that_raises_does_not_end_the_subscription(
    broker: tuple[str, int], prefix: str
) -> None:
    registry = CollectorRegistry()
    publisher = MqttPublisher(MqttSettings(**mqtt_settings(prefix, broker[1])), SITE, registry)
    seen: list[bytes] = []

    def handler(message: Incoming) -> None:
        seen.append(message.payload)
        if message.payload == b"boom":
            raise RuntimeError("handler bug")

    publisher.subscribe("inbox/+", handler)
    task = asyncio.create_task(publisher.run())
    try:
        with capture_logs() as logs:
            async with aiomqtt.Client(*broker) as client:
                inbox = await Inbox(client, prefix).open()
                await inbox.online()
                for payload in (b"boom", b"boom", b"fine"):
                    await client.publish(f"{prefix}/{SITE}/inbox/x", payload, qos=1)
                await until(lambda: b"fine" in seen)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await clear_prefix(*broker, prefix)
    assert seen == [b"boom", b"boom", b"fine"]
    assert [e["event"] for e in logs].count("mqtt_handler_failed") == 1
    assert registry.get_sample_value("ctid_mqtt_reconnects_total") == 0  # the link stayed up
