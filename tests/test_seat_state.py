"""Live seat state from presence events, tracker effects and tracker state (recorded captures)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ctid.ami.capture import load_capture
from ctid.ami.codec import Message, parse_frame
from ctid.ami.presence import (
    ContactStatusChanged,
    DeviceStateChanged,
    MemberPaused,
    PeerStatusChanged,
    normalize_presence,
)
from ctid.live.seat_state import SeatState, SeatStateBoard, SeatStateView, SeatStatus
from ctid.pipeline import PbxPipeline
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker
from tests.truth import CAPTURES

DIRECTORY = EndpointDirectory()


def resolve(device: str) -> str | None:
    return DIRECTORY.classify(device).seat


def messages(name: str) -> list[Message]:
    return [parse_frame(frame.raw) for frame in load_capture(CAPTURES / name).events]


class Replay:
    """A capture through the real pipeline, with the board wired as sink and presence hook."""

    def __init__(self, capture: Path | str, *, wrap_up: float = 0.0) -> None:
        self.frames = messages(str(capture))
        self.tracker = CallTracker("pbx", EndpointDirectory())
        self.board = SeatStateBoard(resolve, wrap_up_seconds=wrap_up, start=0.0)
        self.pipeline = PbxPipeline(self.tracker, DailyTallies(ZoneInfo("UTC")), [self.board])
        self.position = 0

    def until(self, *, ts: float | None = None) -> float:
        """Apply frames up to (and including) the first with Timestamp ≥ ``ts``; returns it."""
        last = 0.0
        while self.position < len(self.frames):
            message = self.frames[self.position]
            self.position += 1
            stamp = float(message.headers.get("Timestamp") or last)
            last = stamp
            self.pipeline.on_messages([message], stamp)
            event = normalize_presence(message, stamp)
            if event is not None:
                self.board.on_presence(event)
            if ts is not None and stamp >= ts:
                break
        return last

    def state(self, seat: str, now: float) -> SeatStatus:
        view = SeatStateView(self.board, lambda: [self.tracker])
        return view(now).get(seat, self.board.default)


def _first(name: str, event: str, **headers: str) -> float:
    for message in messages(name):
        if message.name == event and all(message.headers.get(k) == v for k, v in headers.items()):
            return float(message.headers["Timestamp"])
    raise AssertionError(f"no {event} {headers} in {name}")


def test_presence_events_normalise_to_typed_records() -> None:
    events = [
        e
        for e in (normalize_presence(m, 0.0) for m in messages("seat_unregister_register.ami.gz"))
        if e is not None
    ]
    assert [type(e) for e in events[:3]] == [
        PeerStatusChanged,
        DeviceStateChanged,
        ContactStatusChanged,
    ]
    assert {e.device for e in events} == {"PJSIP/1008"}
    assert [not isinstance(e, MemberPaused) and e.online for e in events] == [
        False, False, False, True, True, True,
    ]  # fmt: skip
    pauses = [
        e
        for e in (normalize_presence(m, 0.0) for m in messages("agent_pause_unpause.ami.gz"))
        if isinstance(e, MemberPaused)
    ]
    assert [(p.device, p.queue, p.paused, p.reason) for p in pauses] == [
        ("PJSIP/1003", "sales", True, "lunch"),
        ("PJSIP/1003", "sales", False, ""),
    ]


def test_unrelated_and_malformed_events_are_skipped() -> None:
    assert normalize_presence(Message("Event", "VarSet", {"Variable": "x"}), 0.0) is None
    assert normalize_presence(Message("Event", "DeviceStateChange", {"State": "INUSE"}), 0) is None
    assert normalize_presence(Message("Response", "Success", {}), 0.0) is None


def test_unregistered_seat_is_offline_until_it_registers_again() -> None:
    replay = Replay("seat_unregister_register.ami.gz")
    gone = _first("seat_unregister_register.ami.gz", "PeerStatus", PeerStatus="Unreachable")
    back = _first("seat_unregister_register.ami.gz", "PeerStatus", PeerStatus="Reachable")
    replay.until(ts=gone + 0.01)
    assert replay.state("1008", gone + 1) == SeatStatus(SeatState.OFFLINE, gone)
    replay.until()
    status = replay.state("1008", back + 1)
    assert status.state is SeatState.IDLE
    assert status.since == pytest.approx(back, abs=0.01)


def test_paused_agent_is_paused_then_idle_from_the_unpause() -> None:
    replay = Replay("agent_pause_unpause.ami.gz")
    paused = _first("agent_pause_unpause.ami.gz", "QueueMemberPause", Paused="1")
    unpaused = _first("agent_pause_unpause.ami.gz", "QueueMemberPause", Paused="0")
    replay.until(ts=paused)
    assert replay.state("1003", paused + 1) == SeatStatus(SeatState.PAUSED, paused)
    replay.until(ts=unpaused)
    assert replay.state("1003", unpaused + 1) == SeatStatus(SeatState.IDLE, unpaused)


def test_seat_rings_talks_and_goes_idle_when_the_call_ends() -> None:
    name = "answered_customer_hangup.ami.gz"
    replay = Replay(name)
    bridged = _first(name, "BridgeEnter")
    hangup = max(float(m.headers["Timestamp"]) for m in messages(name) if m.name == "Hangup")
    created = _first(name, "Newchannel")
    replay.until(ts=created)
    assert replay.state("1001", created).state is SeatState.RINGING
    replay.until(ts=bridged + 1.0)
    talking = replay.state("1001", bridged + 1.0)
    assert talking.state is SeatState.TALKING
    assert bridged <= talking.since <= bridged + 1.0
    replay.until()
    assert replay.state("1001", hangup + 5) == SeatStatus(SeatState.IDLE, hangup)


def test_wrap_up_follows_a_customer_call_for_the_configured_time() -> None:
    name = "answered_customer_hangup.ami.gz"
    replay = Replay(name, wrap_up=30.0)
    replay.until()
    hangup = max(float(m.headers["Timestamp"]) for m in messages(name) if m.name == "Hangup")
    assert replay.state("1001", hangup + 10) == SeatStatus(SeatState.WRAP_UP, hangup)
    assert replay.state("1001", hangup + 31) == SeatStatus(SeatState.IDLE, hangup + 30)


def test_hold_is_reported_while_the_customer_is_held_then_talking_again() -> None:
    name = "hold_mid_call.ami.gz"
    held_at = _first(name, "Hold")
    unheld_at = _first(name, "Unhold")
    replay = Replay(name)
    replay.until(ts=held_at)
    assert replay.state("1001", held_at + 1) == SeatStatus(SeatState.HOLD, held_at)
    replay.until(ts=unheld_at)
    assert replay.state("1001", unheld_at + 1) == SeatStatus(SeatState.TALKING, unheld_at)


def test_a_live_call_outranks_an_offline_registration() -> None:
    board = SeatStateBoard(resolve, start=0.0)
    board.on_presence(DeviceStateChanged(10.0, "PJSIP/1001", "UNAVAILABLE"))
    assert board.snapshot([], 11.0)["1001"] == SeatStatus(SeatState.OFFLINE, 10.0)
    board.on_presence(MemberPaused(12.0, "PJSIP/1001", "sales", True, "break"))
    assert board.snapshot([], 13.0)["1001"].state is SeatState.OFFLINE
    board.on_presence(DeviceStateChanged(14.0, "PJSIP/1001", "NOT_INUSE"))
    assert board.snapshot([], 15.0)["1001"] == SeatStatus(SeatState.PAUSED, 12.0)


def test_paused_in_one_queue_but_not_another_is_not_paused() -> None:
    board = SeatStateBoard(resolve, start=0.0)
    board.on_presence(MemberPaused(1.0, "PJSIP/1002", "sales", True, ""))
    board.on_presence(MemberPaused(1.0, "PJSIP/1002", "support", False, ""))
    assert board.snapshot([], 2.0)["1002"].state is SeatState.IDLE


def test_devices_that_are_nobodys_seat_are_ignored() -> None:
    board = SeatStateBoard(resolve, start=0.0)
    board.on_presence(DeviceStateChanged(1.0, "Queue:sales", "INUSE"))
    board.on_presence(DeviceStateChanged(1.0, "PJSIP/carrier", "UNAVAILABLE"))
    assert board.snapshot([], 2.0) == {}
