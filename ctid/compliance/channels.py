"""The guard's view of live channels: (pbx, uniqueid) → name, linkedid, seat, customer number.

An adapter over the trackers, so the guard itself never reaches into tracker state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ctid.tracker.tracker import CallTracker


@dataclass(frozen=True, slots=True)
class ChannelRef:
    name: str
    linkedid: str
    seat: str | None = None
    """The seat the channel belongs to; None for a trunk or another party."""
    number: str | None = None
    """The customer's number when the channel is part of a customer call, else None."""


ChannelLookup = Callable[[str, str], ChannelRef | None]
"""(pbx, uniqueid) → the live channel (name, linkedid, seat, customer number), or None."""


def tracker_lookup(trackers: Mapping[str, CallTracker]) -> ChannelLookup:
    """A :data:`ChannelLookup` reading the trackers' live channels (one tracker per PBX)."""

    def lookup(pbx: str, uniqueid: str) -> ChannelRef | None:
        tracker = trackers.get(pbx)
        channel = tracker.channels.get(uniqueid) if tracker is not None else None
        if tracker is None or channel is None:
            return None
        call = tracker.calls.get(channel.linkedid)
        number = call.remote if call is not None else None
        return ChannelRef(channel.name, channel.linkedid, channel.party.seat, number)

    return lookup
