"""Captures replayed over real TCP with policies that must fire: the client sends the action,
the replay server records it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ctid.ami.capture import parse_capture
from ctid.ami.client import AmiClient
from ctid.ami.codec import Message
from ctid.ami.events import TRACKED_EVENTS
from ctid.ami.server import AmiReplayServer
from ctid.compliance import (
    Action,
    ComplianceService,
    ComplianceSettings,
    Mode,
    Rule,
    tracker_lookup,
)
from ctid.pipeline import PbxPipeline
from ctid.privacy import mask_number
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import CallEnded, Effect
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker
from tests.truth import capture_streams

BUSY_NUMBER = "7203000104"
BUSY_SEAT_CHANNEL = "PJSIP/1005-00000006"
ALL_OFF: dict[str, Any] = {
    rule: {"mode": "off"}
    for rule in ("calling_hours", "do_not_call", "frequency", "disclosure", "abandon_rate")
}


def policy(**rules: dict[str, Any]) -> ComplianceSettings:
    return ComplianceSettings(version="test-1", **{**ALL_OFF, **rules})


def optout_frame(number: str, ts: float) -> bytes:
    """What ``UserEvent(CtidOptOut,Number: …)`` in an IVR sends (trimmed to what matters)."""
    return (
        "Event: UserEvent\r\nPrivilege: user,all\r\n"
        f"Timestamp: {ts:.6f}\r\nChannel: PJSIP/carrier-000000aa\r\n"
        "Uniqueid: pbx-1795429800.1\r\nLinkedid: pbx-1795429800.1\r\n"
        f"UserEvent: CtidOptOut\r\nNumber: {number}\r\n\r\n"
    ).encode()


def insert_before_first(data: bytes, marker: bytes, frame: bytes) -> bytes:
    at = data.index(marker)
    return data[:at] + frame + data[at:]


async def replay(
    data: bytes, settings: ComplianceSettings, *, preload: Sequence[str] = ()
) -> tuple[AmiReplayServer, ComplianceService]:
    """Stream ``data`` to a client whose pipeline feeds a running compliance service."""
    ended = asyncio.Event()
    pipeline = PbxPipeline(CallTracker("pbx", EndpointDirectory()), DailyTallies(ZoneInfo("UTC")))
    holder: dict[str, AmiClient] = {}
    service = ComplianceService(
        settings,
        tracker_lookup({"pbx": pipeline.tracker}),
        holder,
        lambda: pipeline.tracker.last_ts,
    )
    for number in preload:
        service.guard.optouts.add(number, 0.0)

    def on_call_ended(effect: Effect) -> None:
        if isinstance(effect, CallEnded):
            ended.set()

    pipeline.sinks += [service.effect_sink, on_call_ended]
    pipeline.event_sinks.append(service.event_sink("pbx"))
    async with AmiReplayServer(parse_capture(data), secret="s3cret") as server:
        client = AmiClient(
            name="pbx", host="127.0.0.1", port=server.port, username="ctid", secret="s3cret",
            keep_events=TRACKED_EVENTS,
            on_messages=pipeline.on_messages,
        )  # fmt: skip
        holder["pbx"] = client
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(service.run())]
        try:
            await asyncio.wait_for(ended.wait(), timeout=10)
            await _settle(service)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return server, service


async def _settle(service: ComplianceService) -> None:
    """Wait until every queued decision is recorded and every action answered."""
    for _ in range(200):
        await asyncio.sleep(0.01)
        if service.enforcer.idle:
            return


def call_actions(server: AmiReplayServer) -> list[Message]:
    return [a for a in server.actions_received if a.name in ("Hangup", "Redirect")]


def assert_seat_hung_up(server: AmiReplayServer) -> None:
    """The one call action the server received hung busy.ami's seat up, call rejected (21)."""
    (hangup,) = call_actions(server)
    assert (hangup.name, hangup.get("Channel"), hangup.get("Cause")) == (
        "Hangup",
        BUSY_SEAT_CHANNEL,
        "21",
    )


@pytest.mark.asyncio
async def test_number_on_dnc_list_in_enforce_mode_is_hung_up_before_answer() -> None:
    server, service = await replay(
        capture_streams("busy")[0], policy(do_not_call={"mode": "enforce"}), preload=[BUSY_NUMBER]
    )
    assert_seat_hung_up(server)
    (decision,) = service.enforcer.decisions
    assert (decision.rule, decision.mode, decision.action) == (
        Rule.DO_NOT_CALL,
        Mode.ENFORCE,
        Action.HANGUP,
    )
    assert (decision.seat, decision.number, decision.policy_version) == (
        "1005",
        mask_number(BUSY_NUMBER),
        "test-1",
    )
    (outcome,) = service.enforcer.outcomes
    assert outcome.ok
    assert outcome.detail == "Channel Hungup"


@pytest.mark.asyncio
async def test_observe_mode_records_the_violation_and_sends_nothing() -> None:
    server, service = await replay(
        capture_streams("busy")[0], policy(do_not_call={"mode": "observe"}), preload=[BUSY_NUMBER]
    )
    assert call_actions(server) == []
    (decision,) = service.enforcer.decisions
    assert (decision.rule, decision.action) == (Rule.DO_NOT_CALL, Action.NONE)


@pytest.mark.asyncio
async def test_a_dialplan_opt_out_stops_the_next_dial_of_that_number() -> None:
    data = capture_streams("busy")[0]
    data = insert_before_first(data, b"Event: Newchannel", optout_frame(BUSY_NUMBER, 1795429880.0))
    server, service = await replay(data, policy(do_not_call={"mode": "enforce"}))
    (hangup,) = call_actions(server)
    assert hangup.get("Channel") == BUSY_SEAT_CHANNEL
    assert BUSY_NUMBER in service.guard.optouts


@pytest.mark.asyncio
async def test_dial_at_night_in_the_callees_zone_is_redirected_to_the_announcement() -> None:
    # busy.ami dials at 10:31 UTC: 03:31 in Denver, where +1 720 numbers ring.
    settings = policy(
        calling_hours={"mode": "enforce", "site_windows": ["00:00-23:59"]},
        enforcement={"action": "redirect", "redirect_context": "dnc-announce"},
    )
    server, service = await replay(capture_streams("busy")[0], settings)
    (redirect,) = call_actions(server)
    assert redirect.name == "Redirect"
    assert (redirect.get("Channel"), redirect.get("Context"), redirect.get("Exten")) == (
        BUSY_SEAT_CHANNEL,
        "dnc-announce",
        "s",
    )
    (decision,) = service.enforcer.decisions
    assert "America/Denver" in decision.reason


@pytest.mark.asyncio
@pytest.mark.parametrize("display", ["sendtext", "userevent"])
async def test_a_warning_is_shown_on_the_seats_phone_when_configured(display: str) -> None:
    settings = policy(do_not_call={"mode": "warn"}, enforcement={"warn_display": display})
    server, service = await replay(capture_streams("busy")[0], settings, preload=[BUSY_NUMBER])
    assert call_actions(server) == []  # a warning never stops the call
    (shown,) = [a for a in server.actions_received if a.name in ("SendText", "UserEvent")]
    assert shown.get("Channel") == BUSY_SEAT_CHANNEL
    text = shown.get("Message") if display == "sendtext" else shown.get("Reason")
    assert text is not None
    assert "do-not-call" in text
    assert BUSY_NUMBER not in repr(shown)
    (decision,) = service.enforcer.decisions
    assert decision.action is Action.WARN


@pytest.mark.asyncio
async def test_warnings_are_not_shown_unless_configured() -> None:
    settings = policy(do_not_call={"mode": "warn"})
    server, _service = await replay(capture_streams("busy")[0], settings, preload=[BUSY_NUMBER])
    assert [a for a in server.actions_received if a.name in ("SendText", "UserEvent")] == []
    assert call_actions(server) == []
