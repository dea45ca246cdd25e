"""docs/mqtt-schemas/ hold for what ctid really publishes (JSON Schema draft 2020-12).

Two daemon-side runs against a real Mosquitto, every message checked against its topic's schema:
the busy capture with a do-not-call policy, a quota policy and commands on (status, seat states
and figures, calls, a violation, command replies), and the floor's quota engine driven through a
working day (quota events, the end-of-day report).  Skipped, saying so, without the broker on
127.0.0.1:1883 (``scripts/ensure-mosquitto.sh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from jsonschema import Draft202012Validator, ValidationError

from ctid.ami.capture import load_capture
from ctid.ami.server import AmiReplayServer
from ctid.config import Settings
from ctid.daemon import run_daemon
from tests.mqtt_support import SITE, TOKEN, Inbox, clear_prefix, with_commands
from tests.test_api import every_day_policy, today
from tests.test_compliance_tcp import BUSY_NUMBER
from tests.test_mqtt import until
from tests.test_mqtt_events import _compliance_policy, _quota_floor, quota_day
from tests.test_policy_engine import MONDAY, at
from tests.truth import CAPTURES

SCHEMAS = Path(__file__).parent.parent / "docs" / "mqtt-schemas"
BY_TOPIC = {
    "status": "status",
    "seat/*/state": "seat-state",
    "seat/*/today": "seat-today",
    "call/*": "call",
    "violations/*": "violation",
    "quota/*": "quota-event",
    "reports/eod": "report-eod",
    "reply/*": "reply",
    "command/adjust": "command-adjust",
    "command/optout": "command-optout",
}


@cache
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_of(topic: str) -> str:
    """The schema for a topic below ``<prefix>/<site>/`` (``*`` stands for one level)."""
    levels = topic.split("/")
    for pattern, name in BY_TOPIC.items():
        wanted = pattern.split("/")
        if len(wanted) == len(levels) and all(
            w in ("*", got) for w, got in zip(wanted, levels, strict=True)
        ):
            return name
    raise AssertionError(f"no schema for topic {topic!r}")


def check(topic: str, payload: bytes) -> str:
    """Validate one message; returns the schema's name."""
    name = schema_of(topic)
    # status is plain text: its schema describes the decoded text.
    instance = payload.decode() if name == "status" else json.loads(payload)
    validator(name).validate(instance)
    return name


def check_all(inbox: Inbox) -> set[str]:
    """Validate every message ctid published (not the test's own requests, not retained-message
    clears); returns the schemas used."""
    used = set()
    for topic, message in inbox.messages:
        assert isinstance(message.payload, bytes)
        if message.payload and not topic.startswith("command/"):
            used.add(check(topic, message.payload))
    return used


def test_every_schema_is_valid_draft_2020_12() -> None:
    names = sorted(p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json"))
    assert names == sorted(set(BY_TOPIC.values()))
    for name in names:
        Draft202012Validator.check_schema(validator(name).schema)


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("status", b"maybe"),
        ("seat/1001/state", b'{"seat": "1001", "team": "red", "state": "napping", "since": 1}'),
        ("call/ended", b'{"event": "ended", "pbx": "p", "call_id": "L", "direction": "outbound",'
         b' "number": null, "seat": null, "team": null, "started_at": 1, "answered_at": null}'),
        ("reply/r-1", b'{"request_id": "r-1", "ok": true, "error": "both"}'),
        ("command/adjust", b'{"request_id": "r", "token": "t", "seat": "1", "date": "2026-11-23",'
         b' "kind": "override", "quota": "dials", "who": "a", "why": "b"}'),
    ],
)  # fmt: skip
def test_the_schemas_refuse_payloads_ctid_would_not_publish_or_accept(
    topic: str, payload: bytes
) -> None:
    with pytest.raises(ValidationError):
        check(topic, payload)


def _adjust(request_id: str, **extra: Any) -> dict[str, Any]:
    body = {"request_id": request_id, "token": TOKEN, "seat": "1005", "date": today()}
    return body | {"kind": "half_day", "who": "mgr", "why": "doctor"} | extra


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_a_busy_floor_publishes_only_what_the_schemas_describe(
    broker: tuple[str, int], prefix: str, tmp_path: Path
) -> None:
    requests = {
        "adjust": _adjust("adj"),
        "optout": {"request_id": "opt", "token": TOKEN, "number": "7203000999"}
        | {"who": "crm", "why": "asked"},
    }
    for command, body in requests.items():
        validator(f"command-{command}").validate(body)
    bad = _adjust("bad", kind="field_visit")  # no hours
    with pytest.raises(ValidationError):
        validator("command-adjust").validate(bad)
    async with AmiReplayServer(load_capture(CAPTURES / "busy.ami.gz"), secret="s") as server:
        settings = Settings.model_validate(
            {
                "site": {"name": SITE},
                "pbx": [{"name": "p1", "port": server.port, "secret": "s", "auth": "plain"}],
                "http": {"enabled": False},
                "compliance": _compliance_policy(tmp_path, "enforce"),
                "policy": {"file": str(every_day_policy(tmp_path))},
                "seats": [{"id": "1005", "team": "team-a"}],
                "mqtt": with_commands(prefix, broker[1]),
            }
        )
        daemon = asyncio.create_task(run_daemon(settings, handle_signals=False))
        try:
            async with aiomqtt.Client(*broker) as client:
                inbox = await Inbox(client, prefix).open()
                await inbox.online()
                for command, body in [*requests.items(), ("adjust", bad)]:
                    await inbox.send(command, body)

                def everything_seen() -> bool:
                    flagged = inbox.bodies("violations/do_not_call")
                    ended = {b["call_id"] for b in inbox.bodies("call/ended")}
                    replies = {f"reply/{r}" for r in ("adj", "opt", "bad")} <= inbox.topics()
                    # Seat states and figures are published on a timer: wait for both.
                    figures = {"seat/1005/today", "seat/1005/state"} <= inbox.topics()
                    return replies and figures and bool(flagged) and flagged[0]["linkedid"] in ended

                await inbox.until(everything_seen)
        finally:
            daemon.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await daemon
            await clear_prefix(*broker, prefix)
    used = check_all(inbox)
    assert used >= {"status", "seat-state", "seat-today", "call", "violation", "reply"}
    assert [inbox.bodies(f"reply/{r}")[0]["ok"] for r in ("adj", "opt", "bad")] == [
        True,
        True,
        False,
    ]
    assert BUSY_NUMBER not in json.dumps([inbox.bodies(t) for t in inbox.topics() - {"status"}])


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_quota_events_and_the_eod_report_match_their_schemas(
    broker: tuple[str, int], prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    floor = _quota_floor(prefix, broker[1], tmp_path, monkeypatch)
    publisher = floor.live.publisher
    assert publisher is not None
    clock, scheduler = quota_day(floor)
    run = asyncio.create_task(publisher.run())
    try:
        async with aiomqtt.Client(*broker) as client:
            inbox = await Inbox(client, prefix).open()
            await inbox.online()
            while clock.now() < at(MONDAY, 18, 31):
                await scheduler.run_once()
            await until(lambda: publisher.depth() == 0)
            kinds = {"quota/quota_met", "quota/behind_pace", "quota/eod_shortfall"}
            await inbox.until(
                lambda: kinds | {"quota/grace_shortfall", "reports/eod"} <= inbox.topics()
            )
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await clear_prefix(*broker, prefix)
    assert check_all(inbox) >= {"quota-event", "report-eod", "status"}
