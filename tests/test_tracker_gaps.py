"""The tracker around AMI gaps: stale channels, resync, PBX boot (small hand-made flows)."""

from __future__ import annotations

from ctid.ami import events as ev
from ctid.ami.retime import retime_frame
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Call, CallEnded, Effect
from ctid.tracker.tracker import CallTracker, LiveChannel

SEAT, TRUNK, BRIDGE = "pbx-100.1", "pbx-100.2", "bridge-1"


def _answered_call(tracker: CallTracker, t0: float = 100.0) -> None:
    for event in (
        ev.ChannelCreated(t0, SEAT, SEAT, "PJSIP/1001-00000001", 4, "1001", "7100000001"),
        ev.ChannelCreated(t0, TRUNK, SEAT, "PJSIP/carrier-00000002", 0, "", "s"),
        ev.DialStarted(t0, SEAT, TRUNK, "7100000001@carrier"),
        ev.ChannelStateChanged(t0 + 2, TRUNK, 6),
        ev.DialEnded(t0 + 2, SEAT, TRUNK, "ANSWER"),
        ev.BridgeEntered(t0 + 2, BRIDGE, TRUNK),
        ev.BridgeEntered(t0 + 2, BRIDGE, SEAT),
    ):
        tracker.apply(event)


def _ended(effects: list[Effect]) -> list[Call]:
    return [e.call for e in effects if isinstance(e, CallEnded)]


def test_talk_stops_at_the_last_frame_and_a_vanished_call_is_interrupted() -> None:
    tracker = CallTracker("pbx", EndpointDirectory())
    _answered_call(tracker)
    tracker.connection_lost(110.0)
    (call,) = _ended(tracker.resynced(140.0, []))
    assert call.interrupted
    assert call.talk_seconds == 8.0
    assert call.ended_at == 110.0


def test_a_surviving_call_counts_again_from_the_resync_not_across_the_gap() -> None:
    tracker = CallTracker("pbx", EndpointDirectory())
    _answered_call(tracker)
    tracker.connection_lost(110.0)
    live = [
        LiveChannel(SEAT, SEAT, "PJSIP/1001-00000001", 6, BRIDGE),
        LiveChannel(TRUNK, SEAT, "PJSIP/carrier-00000002", 6, BRIDGE),
    ]
    assert _ended(tracker.resynced(140.0, live)) == []
    tracker.apply(ev.BridgeLeft(150.0, BRIDGE, SEAT))
    tracker.apply(ev.ChannelHungUp(150.0, SEAT, 16))
    (call,) = _ended(tracker.apply(ev.ChannelHungUp(150.0, TRUNK, 16)))
    assert call.talk_seconds == 8.0 + 10.0
    assert not call.interrupted


def test_a_call_in_progress_when_ctid_starts_is_adopted_from_the_resync() -> None:
    tracker = CallTracker("pbx", EndpointDirectory())
    live = [
        LiveChannel(SEAT, SEAT, "PJSIP/1001-00000001", 6, BRIDGE),
        LiveChannel(TRUNK, SEAT, "PJSIP/carrier-00000002", 6, BRIDGE),
    ]
    tracker.resynced(200.0, live)
    tracker.apply(ev.BridgeLeft(230.0, BRIDGE, SEAT))
    tracker.apply(ev.ChannelHungUp(230.0, SEAT, 16))
    (call,) = _ended(tracker.apply(ev.ChannelHungUp(230.0, TRUNK, 16)))
    assert call.talk_seconds == 30.0
    assert call.seat == "1001"


def test_a_resync_answer_that_raced_a_hangup_does_not_revive_the_channel() -> None:
    tracker = CallTracker("pbx", EndpointDirectory())
    _answered_call(tracker)
    tracker.apply(ev.BridgeLeft(105.0, BRIDGE, SEAT))
    tracker.apply(ev.ChannelHungUp(105.0, SEAT, 16))
    tracker.apply(ev.ChannelHungUp(105.0, TRUNK, 16))
    tracker.resynced(105.0, [LiveChannel(SEAT, SEAT, "PJSIP/1001-00000001", 6, None)])
    assert tracker.channels == {}


def test_a_pbx_restart_ends_the_stale_calls_but_not_new_ones() -> None:
    tracker = CallTracker("pbx", EndpointDirectory())
    _answered_call(tracker)
    tracker.connection_lost(110.0)
    effects = tracker.apply(ev.PbxBooted(200.0, uptime=5.0))
    (call,) = _ended(effects)
    assert call.interrupted
    assert call.talk_seconds == 8.0
    # A PBX that kept running (long uptime) leaves its channels alone.
    other = CallTracker("pbx", EndpointDirectory())
    _answered_call(other)
    other.connection_lost(110.0)
    assert _ended(other.apply(ev.PbxBooted(200.0, uptime=86_400.0))) == []


def test_retime_moves_timestamps_and_keeps_unique_ids_distinct() -> None:
    raw = (
        b"Event: Newchannel\r\nTimestamp: 1795429816.028691\r\n"
        b"Uniqueid: pbx-1795429816.0\r\nLinkedid: pbx-1795429816.0\r\nExten: 7104012101\r\n"
    )
    moved = retime_frame(raw, 100.5)
    assert b"Timestamp: 1795429916.528691\r\n" in moved
    assert b"Uniqueid: pbx-1795429916.0\r\n" in moved
    assert b"Exten: 7104012101\r\n" in moved


def test_open_seconds_split_talk_and_hold_of_calls_still_open() -> None:
    # What the per-seat gauges add for calls in progress: the seat talked 100→102 (answer)
    # →110, then holds the customer; nothing counts before a link's start.
    tracker = CallTracker("pbx", EndpointDirectory())
    _answered_call(tracker)
    assert tracker.open_seconds(101.0) == {"1001": (0.0, 0.0)}  # before the answer
    assert tracker.open_seconds(107.5) == {"1001": (5.5, 0.0)}
    tracker.apply(ev.HoldChanged(110.0, SEAT, held=True))
    assert tracker.open_seconds(117.0) == {"1001": (0.0, 7.0)}  # the talk link closed at 110
    tracker.apply(ev.HoldChanged(120.0, SEAT, held=False))
    assert tracker.open_seconds(125.0) == {"1001": (5.0, 0.0)}
