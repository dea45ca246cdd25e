"""The guard fed like the daemon feeds it (events, then the tracker's effects), offline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from ctid.ami.codec import AmiCodec, Message
from ctid.ami.events import UserEventRaised, normalize
from ctid.compliance import (
    Action,
    ChannelRef,
    ComplianceGuard,
    ComplianceSettings,
    Decision,
    Mode,
    Rule,
    tracker_lookup,
)
from ctid.privacy import mask_number
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import OutboundDial
from ctid.tracker.tracker import CallTracker
from tests.truth import capture_streams

HOLD_CALL = "pbx-1795429918.20"
HOLD_ANSWERED = 1795429921.625115  # DialEnd ANSWER of hold_mid_call; talk lasts 28 s
ALL_OFF: dict[str, Any] = {
    rule: {"mode": "off"}
    for rule in ("calling_hours", "do_not_call", "frequency", "disclosure", "abandon_rate")
}


def policy(**rules: dict[str, Any]) -> ComplianceSettings:
    return ComplianceSettings(version="test-1", **{**ALL_OFF, **rules})


def drive(
    data: bytes, settings: ComplianceSettings, optouts: Sequence[str] = ()
) -> tuple[ComplianceGuard, list[Decision]]:
    """Replay like the daemon: timer tick, event to the guard, event to the tracker, effects."""
    tracker = CallTracker("pbx", EndpointDirectory())
    guard = ComplianceGuard(settings, tracker_lookup({"pbx": tracker}))
    for number in optouts:
        guard.optouts.add(number, 0.0)
    decisions: list[Decision] = []
    for message in AmiCodec().feed(data):
        event = normalize(message, 0.0) if isinstance(message, Message) else None
        if event is None:
            continue
        decisions += guard.due(event.ts)  # a timer ticking at every event's time
        decisions += guard.on_event(event, "pbx")
        for effect in tracker.apply(event):
            decisions += guard.on_effect(effect)
    return guard, decisions


def disclosure_frame(linkedid: str, ts: float) -> bytes:
    return (
        f"Event: UserEvent\r\nTimestamp: {ts:.6f}\r\nChannel: PJSIP/carrier-0000000d\r\n"
        f"Uniqueid: pbx-1795429918.21\r\nLinkedid: {linkedid}\r\nUserEvent: CtidDisclosure\r\n\r\n"
    ).encode()


def after_first(data: bytes, marker: bytes, frame: bytes) -> bytes:
    start = data.index(marker)
    end = data.index(b"\r\n\r\n", start) + 4
    return data[:end] + frame + data[end:]


# --- disclosure ------------------------------------------------------------------------


def test_answered_call_without_disclosure_is_caught_at_15_seconds() -> None:
    settings = policy(disclosure={"mode": "enforce", "within_seconds": 15})
    _, decisions = drive(capture_streams("hold_mid_call")[0], settings)
    (late,) = decisions
    assert (late.rule, late.action, late.linkedid) == (Rule.DISCLOSURE, Action.HANGUP, HOLD_CALL)
    assert late.ts == pytest.approx(HOLD_ANSWERED + 15, abs=0.01)
    assert late.channel == "PJSIP/1001-0000000c"
    assert late.seat == "1001"


def test_a_disclosure_userevent_on_the_call_clears_it() -> None:
    data = after_first(
        capture_streams("hold_mid_call")[0],
        b"DialStatus: ANSWER",
        disclosure_frame(HOLD_CALL, HOLD_ANSWERED + 3),
    )
    _, decisions = drive(data, policy(disclosure={"mode": "enforce"}))
    assert decisions == []


def test_a_call_ending_before_the_deadline_is_no_violation() -> None:
    # answered_customer_hangup: 12 s of talk, under the 15 s allowed.
    _, decisions = drive(capture_streams("answered_customer_hangup")[0], policy(disclosure={}))
    assert decisions == []


def test_an_unanswered_call_needs_no_disclosure() -> None:
    _, decisions = drive(capture_streams("no_answer")[0], policy(disclosure={"mode": "warn"}))
    assert decisions == []


# --- abandon rate ----------------------------------------------------------------------


def test_an_abandoned_queue_call_is_a_breach_once_the_sample_is_big_enough() -> None:
    settings = policy(abandon_rate={"mode": "enforce", "min_calls": 1})
    _, decisions = drive(capture_streams("inbound_queue_abandoned")[0], settings)
    (breach,) = decisions
    assert (breach.rule, breach.action, breach.channel) == (Rule.ABANDON_RATE, Action.WARN, None)
    assert "queue sales: 1/1 abandoned" in breach.reason
    _, answered = drive(capture_streams("inbound_queue_answered")[0], settings)
    assert answered == []


# --- do not call -----------------------------------------------------------------------

NUMBER = "7203000104"


def dial(ts: float, number: str = NUMBER, seat: str = "1001", uid: str = "U1") -> OutboundDial:
    return OutboundDial("pbx", ts, seat, number, uid, f"L-{uid}")


def fake_lookup(pbx: str, uniqueid: str) -> ChannelRef:
    return ChannelRef(f"PJSIP/seat-{uniqueid}", f"L-{uniqueid}")


def test_click_to_call_is_stopped_at_the_seat_channel_too() -> None:
    # The Originate rings the seat first; the seat's channel then Dials the customer.
    settings = policy(do_not_call={"mode": "enforce"})
    _, decisions = drive(
        capture_streams("click_to_call_originate")[0], settings, optouts=["7104015111"]
    )
    (stop,) = decisions
    assert (stop.action, stop.channel, stop.seat) == (Action.HANGUP, "PJSIP/1002-0000001a", "1002")


def test_opt_out_by_userevent_applies_to_the_next_dial_in_any_spelling() -> None:
    guard = ComplianceGuard(policy(do_not_call={"mode": "warn"}), fake_lookup)
    assert guard.on_effect(dial(10.0)) == []
    guard.on_event(UserEventRaised(11.0, "CtidOptOut", "X", {"Number": NUMBER}), "pbx")
    (again,) = guard.on_effect(dial(12.0, number="+17203000104", uid="U2"))
    assert (again.rule, again.mode, again.action) == (Rule.DO_NOT_CALL, Mode.WARN, Action.WARN)
    assert (again.number, again.channel) == (mask_number("+17203000104"), "PJSIP/seat-U2")
    guard.optouts.remove(NUMBER, 13.0)
    assert guard.on_effect(dial(14.0, uid="U3")) == []


def test_several_enforced_rules_on_one_dial_send_one_hangup() -> None:
    settings = policy(
        do_not_call={"mode": "enforce"},
        calling_hours={"mode": "enforce", "site_windows": ["09:00-10:00"]},
    )
    guard = ComplianceGuard(settings, fake_lookup)
    guard.optouts.add(NUMBER, 0.0)
    decisions = guard.on_effect(dial(0.0))  # 00:00 UTC: outside the site window too
    assert [d.rule for d in decisions] == [Rule.DO_NOT_CALL, Rule.CALLING_HOURS]
    assert [d.action for d in decisions] == [Action.HANGUP, Action.NONE]


def test_enforce_without_a_live_seat_channel_degrades_to_a_warning() -> None:
    guard = ComplianceGuard(policy(do_not_call={"mode": "enforce"}), lambda pbx, uid: None)
    guard.optouts.add(NUMBER, 0.0)
    (decision,) = guard.on_effect(dial(0.0))
    assert decision.action is Action.WARN
    assert decision.reason.endswith("no channel to act on")


# --- frequency -------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "fourth"), [("enforce", "2 attempts"), ("warn", "3 attempts")])
def test_dials_stopped_by_enforcement_do_not_count_as_attempts(mode: str, fourth: str) -> None:
    settings = policy(frequency={"mode": mode, "site": {"per_day": 2}})
    guard = ComplianceGuard(settings, fake_lookup)
    assert guard.on_effect(dial(0.0, uid="A")) == []
    assert guard.on_effect(dial(1.0, uid="B")) == []
    (third,) = guard.on_effect(dial(2.0, uid="C"))
    assert third.reason == "site-wide: 2 attempts in 24 h (cap 2)"
    (fourth_decision,) = guard.on_effect(dial(3.0, uid="D"))
    assert fourth in fourth_decision.reason
