"""Normalise AMI messages into the few typed events the call tracker needs.

Each event carries ``ts``: the PBX's ``Timestamp`` header (``timestampevents=yes``), so a
replay is deterministic; the local receive time is the fallback for events without one.
Unknown events map to ``None`` and cost one dict lookup.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from ctid.ami.codec import Message


@dataclass(frozen=True, slots=True)
class ChannelCreated:
    ts: float
    uniqueid: str
    linkedid: str
    channel: str
    state: int
    caller_num: str
    exten: str


@dataclass(frozen=True, slots=True)
class ChannelStateChanged:
    ts: float
    uniqueid: str
    state: int


@dataclass(frozen=True, slots=True)
class ChannelHungUp:
    ts: float
    uniqueid: str
    cause: int


@dataclass(frozen=True, slots=True)
class DialStarted:
    ts: float
    caller_uniqueid: str | None
    dest_uniqueid: str
    dial_string: str


@dataclass(frozen=True, slots=True)
class DialEnded:
    ts: float
    caller_uniqueid: str | None
    dest_uniqueid: str
    status: str


@dataclass(frozen=True, slots=True)
class BridgeEntered:
    ts: float
    bridge_id: str
    uniqueid: str


@dataclass(frozen=True, slots=True)
class BridgeLeft:
    ts: float
    bridge_id: str
    uniqueid: str


@dataclass(frozen=True, slots=True)
class HoldChanged:
    ts: float
    uniqueid: str
    held: bool


@dataclass(frozen=True, slots=True)
class QueueAbandoned:
    ts: float
    uniqueid: str
    queue: str


@dataclass(frozen=True, slots=True)
class FaxFinished:
    ts: float
    uniqueid: str
    sent: bool
    pages: int


@dataclass(frozen=True, slots=True)
class PbxBooted:
    """``FullyBooted``: sent after every login; ``uptime`` tells a restarted PBX apart."""

    ts: float
    uptime: float


@dataclass(frozen=True, slots=True)
class PbxShutdown:
    ts: float
    restart: bool


@dataclass(frozen=True, slots=True)
class UserEventRaised:
    """A dialplan ``UserEvent`` (disclosure played, opt-out pressed, ...)."""

    ts: float
    name: str
    uniqueid: str | None
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class CdrWritten:
    """A ``Cdr`` event from cdr_manager: Asterisk's own record, kept for reconciliation."""

    ts: float
    linkedid: str
    uniqueid: str
    channel: str
    dest_channel: str
    disposition: str
    billsec: int
    duration: int
    start_time: str = ""
    """``StartTime`` as the PBX wrote it: local wall clock, whole seconds, no zone."""
    answer_time: str = ""
    """``AnswerTime``; empty when the CDR was never answered."""
    end_time: str = ""
    sequence: str = ""
    """cdr_manager's ``Sequence`` (when configured): tells CDRs of one uniqueid apart."""


AmiEvent = (
    ChannelCreated
    | ChannelStateChanged
    | ChannelHungUp
    | DialStarted
    | DialEnded
    | BridgeEntered
    | BridgeLeft
    | HoldChanged
    | QueueAbandoned
    | FaxFinished
    | PbxBooted
    | PbxShutdown
    | UserEventRaised
    | CdrWritten
)

_Headers = dict[str, str]


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _newchannel(h: _Headers, ts: float) -> ChannelCreated:
    # Interned: the tracker keeps these ids in several indexes, and later events bring new
    # string objects for them; one object per id keeps an open call near 2 KB.
    uniqueid = sys.intern(h["Uniqueid"])
    return ChannelCreated(
        ts,
        uniqueid,
        sys.intern(h.get("Linkedid") or uniqueid),
        sys.intern(h["Channel"]),
        _int(h.get("ChannelState")),
        h.get("CallerIDNum", ""),
        h.get("Exten", ""),
    )


def _newstate(h: _Headers, ts: float) -> ChannelStateChanged:
    return ChannelStateChanged(ts, h["Uniqueid"], _int(h.get("ChannelState")))


def _hangup(h: _Headers, ts: float) -> ChannelHungUp:
    return ChannelHungUp(ts, h["Uniqueid"], _int(h.get("Cause")))


def _dialbegin(h: _Headers, ts: float) -> DialStarted:
    caller = h.get("Uniqueid")
    dest = sys.intern(h["DestUniqueid"])
    return DialStarted(ts, sys.intern(caller) if caller else caller, dest, h.get("DialString", ""))


def _dialend(h: _Headers, ts: float) -> DialEnded:
    return DialEnded(ts, h.get("Uniqueid"), h["DestUniqueid"], h.get("DialStatus", ""))


def _bridgeenter(h: _Headers, ts: float) -> BridgeEntered:
    # Interned: every member channel keeps the bridge id; one string object serves them all.
    return BridgeEntered(ts, sys.intern(h["BridgeUniqueid"]), sys.intern(h["Uniqueid"]))


def _bridgeleave(h: _Headers, ts: float) -> BridgeLeft:
    return BridgeLeft(ts, h["BridgeUniqueid"], h["Uniqueid"])


def _hold(h: _Headers, ts: float) -> HoldChanged:
    return HoldChanged(ts, h["Uniqueid"], True)


def _unhold(h: _Headers, ts: float) -> HoldChanged:
    return HoldChanged(ts, h["Uniqueid"], False)


def _abandon(h: _Headers, ts: float) -> QueueAbandoned:
    return QueueAbandoned(ts, h["Uniqueid"], h.get("Queue", ""))


def _sendfax(h: _Headers, ts: float) -> FaxFinished:
    return FaxFinished(ts, h["Uniqueid"], True, _int(h.get("PagesTransferred")))


def _receivefax(h: _Headers, ts: float) -> FaxFinished:
    return FaxFinished(ts, h["Uniqueid"], False, _int(h.get("PagesTransferred")))


def _fullybooted(h: _Headers, ts: float) -> PbxBooted:
    return PbxBooted(ts, float(_int(h.get("Uptime"), default=-1)))


def _shutdown(h: _Headers, ts: float) -> PbxShutdown:
    return PbxShutdown(ts, h.get("Restart", "").lower() in ("true", "yes", "1"))


def _userevent(h: _Headers, ts: float) -> UserEventRaised:
    return UserEventRaised(ts, h.get("UserEvent", ""), h.get("Uniqueid"), dict(h))


def _cdr(h: _Headers, ts: float) -> CdrWritten:
    return CdrWritten(
        ts,
        h.get("LinkedID", ""),
        h.get("UniqueID", ""),
        h.get("Channel", ""),
        h.get("DestinationChannel", ""),
        h.get("Disposition", ""),
        _int(h.get("BillableSeconds")),
        _int(h.get("Duration")),
        h.get("StartTime", ""),
        h.get("AnswerTime", ""),
        h.get("EndTime", ""),
        h.get("Sequence", ""),
    )


_NORMALISERS: dict[str, Callable[[_Headers, float], AmiEvent]] = {
    "Newchannel": _newchannel,
    "Newstate": _newstate,
    "Hangup": _hangup,
    "DialBegin": _dialbegin,
    "DialEnd": _dialend,
    "BridgeEnter": _bridgeenter,
    "BridgeLeave": _bridgeleave,
    "Hold": _hold,
    "Unhold": _unhold,
    "QueueCallerAbandon": _abandon,
    "SendFAX": _sendfax,
    "ReceiveFAX": _receivefax,
    "FullyBooted": _fullybooted,
    "Shutdown": _shutdown,
    "UserEvent": _userevent,
    "Cdr": _cdr,
}

TRACKED_EVENTS: frozenset[str] = frozenset(_NORMALISERS)
"""Event names worth decoding; give this to ``AmiCodec(keep_events=...)``."""


def event_time(headers: _Headers, received_at: float) -> float:
    """The PBX timestamp of an event, or the receive time when it has none."""
    stamp = headers.get("Timestamp")
    if stamp:
        try:
            return float(stamp)
        except ValueError:
            pass
    return received_at


def normalize(message: Message, received_at: float) -> AmiEvent | None:
    """Typed event for a tracked AMI event, ``None`` for anything else or a malformed one."""
    if message.kind != "Event":
        return None
    build = _NORMALISERS.get(message.name)
    if build is None:
        return None
    headers = message.headers
    assert isinstance(headers, dict)
    try:
        return build(headers, event_time(headers, received_at))
    except KeyError:
        # A tracked event missing a key we need (e.g. DialEnd without DestUniqueid) carries
        # nothing we can use; dropping it is safer than guessing.
        return None
