"""Normalise the AMI events that say whether a seat's phone is there and taking calls.

The call tracker does not need these; the live seat state does (offline, paused).  Same shape
as :mod:`ctid.ami.events`: frozen dataclasses with the event's PBX ``Timestamp`` as ``ts``,
unknown names skipped by one dict lookup, malformed events dropped rather than guessed.

``device`` is always ``TECH/endpoint`` (``PJSIP/1008``), which
:meth:`ctid.tracker.endpoints.EndpointDirectory.classify` maps to a seat.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ctid.ami.codec import Message
from ctid.ami.events import event_time

_OFFLINE_DEVICE_STATES = frozenset({"UNAVAILABLE", "INVALID"})
_OFFLINE_CONTACT_STATES = frozenset({"Removed", "Unreachable"})
_OFFLINE_PEER_STATES = frozenset({"Unreachable", "Unregistered", "Rejected"})


@dataclass(frozen=True, slots=True)
class DeviceStateChanged:
    """``DeviceStateChange``: Asterisk's aggregated device state (``NOT_INUSE``, ...)."""

    ts: float
    device: str
    state: str

    @property
    def online(self) -> bool:
        # UNKNOWN is what a device reports before its first registration settles: not proof of
        # absence, so it does not mark a seat offline.
        return self.state not in _OFFLINE_DEVICE_STATES


@dataclass(frozen=True, slots=True)
class ContactStatusChanged:
    """``ContactStatus`` (PJSIP): a registration contact appeared, vanished, was qualified."""

    ts: float
    device: str
    status: str

    @property
    def online(self) -> bool:
        return self.status not in _OFFLINE_CONTACT_STATES


@dataclass(frozen=True, slots=True)
class PeerStatusChanged:
    """``PeerStatus`` (chan_sip and PJSIP): reachable, unreachable, (un)registered."""

    ts: float
    device: str
    status: str

    @property
    def online(self) -> bool:
        return self.status not in _OFFLINE_PEER_STATES


@dataclass(frozen=True, slots=True)
class MemberPaused:
    """``QueueMemberPause``: a queue member paused or unpaused in one queue."""

    ts: float
    device: str
    queue: str
    paused: bool
    reason: str


PresenceEvent = DeviceStateChanged | ContactStatusChanged | PeerStatusChanged | MemberPaused
Reachability = DeviceStateChanged | ContactStatusChanged | PeerStatusChanged

_Headers = Mapping[str, str]


def _device_state(h: _Headers, ts: float) -> DeviceStateChanged:
    return DeviceStateChanged(ts, h["Device"], h.get("State", "").upper())


def _contact_status(h: _Headers, ts: float) -> ContactStatusChanged:
    endpoint = h.get("EndpointName") or h["AOR"]
    return ContactStatusChanged(ts, f"PJSIP/{endpoint}", h.get("ContactStatus", ""))


def _peer_status(h: _Headers, ts: float) -> PeerStatusChanged:
    peer = h["Peer"]
    if "/" not in peer:  # very old chan_sip omits the technology
        peer = f"{h.get('ChannelType', 'SIP')}/{peer}"
    return PeerStatusChanged(ts, peer, h.get("PeerStatus", ""))


def _member_pause(h: _Headers, ts: float) -> MemberPaused:
    device = h.get("StateInterface") or h["Interface"]
    paused = h.get("Paused", "0").strip().lower() in ("1", "true", "yes")
    return MemberPaused(ts, device, h.get("Queue", ""), paused, h.get("PausedReason", ""))


_NORMALISERS: dict[str, Callable[[_Headers, float], PresenceEvent]] = {
    "DeviceStateChange": _device_state,
    "ContactStatus": _contact_status,
    "PeerStatus": _peer_status,
    "QueueMemberPause": _member_pause,
}

PRESENCE_EVENTS: frozenset[str] = frozenset(_NORMALISERS)
"""Add these to the codec's ``keep_events`` so they are decoded at all."""


def normalize_presence(message: Message, received_at: float) -> PresenceEvent | None:
    """Typed presence event, or ``None`` for any other message or a malformed one."""
    if message.kind != "Event":
        return None
    build = _NORMALISERS.get(message.name)
    if build is None:
        return None
    headers = message.headers
    plain = headers if isinstance(headers, dict) else dict(headers)
    try:
        return build(plain, event_time(plain, received_at))
    except KeyError:
        return None
