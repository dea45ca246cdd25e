"""The call tracker: a pure state machine from normalised AMI events to calls and effects.

``apply(event)`` returns the effects the event causes (a call ended, a seat started dialling
a customer, ...); adapters carry them out.  No I/O and no clock reads: every time comes from
the events, so replaying a capture always gives the same result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ctid.ami import events as ev
from ctid.tracker.endpoints import EndpointDirectory, PartyKind
from ctid.tracker.links import LinkBook, close_link
from ctid.tracker.model import (
    Call,
    CallEnded,
    Channel,
    Direction,
    Effect,
    InternalCallPlaced,
    InternalTalk,
    OutboundDial,
    Segment,
)
from ctid.tracker.outcome import classify

_STATE_UP = 6
_STATE_RING = 4
_BOOT_TOLERANCE_S = 2.0
_ENDED_MEMORY = 4096
"""Hung-up channels remembered so a resync answer that raced their Hangup cannot revive them."""


@dataclass(frozen=True, slots=True)
class LiveChannel:
    """A channel as a resync (``CoreShowChannels``) reports it."""

    uniqueid: str
    linkedid: str
    name: str
    state: int
    bridge_id: str | None


def dial_number(dial_string: str) -> str:
    """``7103999110@carrier`` or ``PJSIP/7103999110@carrier`` → ``7103999110``."""
    number = dial_string.split("@", 1)[0]
    return number.rsplit("/", 1)[-1]


class CallTracker:
    def __init__(self, pbx: str, directory: EndpointDirectory) -> None:
        self.pbx = pbx
        self.directory = directory
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, list[str]] = {}
        """Bridge id → member uniqueids (a list: bridges are small, and lists are compact)."""
        self.local_pairs: dict[str, list[str]] = {}
        self.groups: dict[str, int] = {}
        """Linkedid → channels still up; the call ends when it drops to zero."""
        self.calls: dict[str, Call] = {}
        self.links = LinkBook()
        self.last_ts = 0.0
        self.lost_at: float | None = None
        self.stale: set[str] = set()
        """Channels known when the link last dropped, whose fate the PBX has not told yet."""
        self._ended_recently: dict[str, None] = {}

    # --- public -----------------------------------------------------------------------

    def apply(self, event: ev.AmiEvent) -> list[Effect]:
        # FullyBooted carries no Timestamp; its stand-in time must not move the PBX clock.
        if event.ts > self.last_ts and not isinstance(event, ev.PbxBooted):
            self.last_ts = event.ts
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return []
        effects: list[Effect] = []
        handler(self, event, effects)
        return effects

    def connection_lost(self, at: float) -> list[Effect]:
        """The AMI link dropped; ``at`` is the PBX time of the last frame received.

        Open links close there: beyond it nothing is provable.  The channels become *stale*:
        kept until a resync or a PBX boot tells whether they survived the gap.
        """
        effects: list[Effect] = []
        at = max(at, self.last_ts)
        for seat_uid, ext_uid in self.links.all_links():
            self._close(seat_uid, ext_uid, at)
        for seat_uid in list(self.links.internal_since):
            self._close_internal(seat_uid, at, effects)
        self.lost_at = at
        self.stale = set(self.channels)
        return effects

    def resynced(self, at: float, live: Iterable[LiveChannel]) -> list[Effect]:
        """A snapshot of the PBX (``CoreShowChannels``) after (re)connecting.

        Stale channels missing from it died in the gap; live channels we do not know (ctid
        started mid-call) are adopted; talk is provable again from ``at`` on.
        """
        effects: list[Effect] = []
        at = max(at, self.last_ts)
        snapshot = {c.uniqueid: c for c in live if c.uniqueid not in self._ended_recently}
        self._vanish([uid for uid in self.stale if uid not in snapshot], effects)
        self.stale.clear()
        for item in snapshot.values():
            channel = self.channels.get(item.uniqueid)
            if channel is None:
                created = ev.ChannelCreated(
                    at, item.uniqueid, item.linkedid, item.name, item.state, "", ""
                )
                self._on_created(created, effects)
                channel = self.channels[item.uniqueid]
            if item.state == _STATE_UP and channel.up_at is None:
                channel.up_at = at
            if channel.bridge != item.bridge_id:
                self._leave_bridge(channel)
                if item.bridge_id:
                    self._enter_bridge(channel, item.bridge_id)
        self.lost_at = None
        self._refresh(at, list(snapshot), effects)
        return effects

    def open_calls(self) -> list[Call]:
        return list(self.calls.values())

    def open_seconds(self, now: float) -> dict[str, tuple[float, float]]:
        """Talk and hold seconds per seat in links still open at ``now`` (PBX time)."""
        out: dict[str, tuple[float, float]] = {}
        channels = self.channels
        # Every scrape, for every seat on a call: comparisons only, no call per link.
        for seat_uid, links in self.links.by_seat.items():
            channel = channels.get(seat_uid)
            seat = None if channel is None else channel.party.seat
            if seat is None:
                continue
            talk = hold = 0.0
            for link in links:
                if now > link.since:
                    if link.held:
                        hold += now - link.since
                    else:
                        talk += now - link.since
            known = out.get(seat)
            out[seat] = (talk, hold) if known is None else (known[0] + talk, known[1] + hold)
        return out

    # --- channels ---------------------------------------------------------------------

    def _on_created(self, e: ev.ChannelCreated, out: list[Effect]) -> None:
        if e.uniqueid in self.channels:
            return  # a repeated Newchannel must not count the channel twice
        party = self.directory.classify(e.channel)
        channel = Channel(
            e.uniqueid, e.linkedid, e.channel, party, e.state == _STATE_RING, e.ts, exten=e.exten
        )
        self.channels[e.uniqueid] = channel
        self.groups[e.linkedid] = self.groups.get(e.linkedid, 0) + 1
        if party.local_pair:
            self.local_pairs.setdefault(party.local_pair, []).append(e.uniqueid)
        if party.kind is PartyKind.TRUNK and e.linkedid not in self.calls:
            direction = Direction.INBOUND if channel.incoming else Direction.OUTBOUND
            remote = e.caller_num if channel.incoming else ""
            self.calls[e.linkedid] = Call(
                self.pbx, e.linkedid, direction, e.ts, remote=remote, trunk_channel=e.channel
            )

    def _on_state(self, e: ev.ChannelStateChanged, out: list[Effect]) -> None:
        channel = self.channels.get(e.uniqueid)
        if channel is None or e.state != _STATE_UP or channel.up_at is not None:
            return
        channel.up_at = e.ts
        if channel.party.kind is PartyKind.TRUNK:
            call = self.calls.get(channel.linkedid)
            if (
                call
                and call.answered_at is None
                and (call.direction is Direction.OUTBOUND or call.fax)
            ):
                call.answered_at = e.ts

    def _on_hangup(self, e: ev.ChannelHungUp, out: list[Effect]) -> None:
        channel = self.channels.get(e.uniqueid)
        if channel is None:
            return
        if channel.party.kind is PartyKind.TRUNK:
            call = self.calls.get(channel.linkedid)
            if call and call.cause is None:
                call.cause = e.cause
        self._remove(channel, e.ts, out)

    def _remove(self, channel: Channel, at: float, out: list[Effect]) -> None:
        neighbours = self._leave_bridge(channel)
        pair = channel.party.local_pair
        if pair and pair in self.local_pairs:
            halves = self.local_pairs[pair]
            halves.remove(channel.uniqueid)
            neighbours.extend(halves)
            if not halves:
                del self.local_pairs[pair]
        # Still known while its links close (segments need its seat), but no longer connected.
        channel.gone = True
        self._refresh(at, [channel.uniqueid, *neighbours], out)
        del self.channels[channel.uniqueid]
        self.stale.discard(channel.uniqueid)
        self._ended_recently[channel.uniqueid] = None
        if len(self._ended_recently) > _ENDED_MEMORY:
            del self._ended_recently[next(iter(self._ended_recently))]
        left = self.groups.get(channel.linkedid, 0) - 1
        if left > 0:
            self.groups[channel.linkedid] = left
        else:
            self.groups.pop(channel.linkedid, None)
            self._finish(channel.linkedid, at, out)

    def _vanish(self, uids: list[str], out: list[Effect]) -> None:
        """Channels that died unseen (PBX crash or restart during a gap)."""
        at = self.lost_at if self.lost_at is not None else self.last_ts
        for uid in uids:
            channel = self.channels.get(uid)
            if channel is None:
                continue
            call = self.calls.get(channel.linkedid)
            if call is not None:
                call.interrupted = True
            self._remove(channel, max(at, channel.created_at), out)

    def _finish(self, linkedid: str, at: float, out: list[Effect]) -> None:
        call = self.calls.pop(linkedid, None)
        if call is None:
            return
        call.ended_at = at
        call.outcome = classify(call)
        out.append(CallEnded(call))

    # --- dialling ---------------------------------------------------------------------

    def _on_dial_begin(self, e: ev.DialStarted, out: list[Effect]) -> None:
        dest = self.channels.get(e.dest_uniqueid)
        if dest is None:
            return
        caller = self.channels.get(e.caller_uniqueid) if e.caller_uniqueid else None
        caller_seat = caller.party.seat if caller else None
        if dest.party.kind is PartyKind.TRUNK:
            call = self.calls.get(dest.linkedid)
            if call is None:
                return
            if call.dial_started_at is None:
                call.dial_started_at = e.ts
            number = dial_number(e.dial_string) if e.dial_string else ""
            if not call.remote:
                call.remote = number or (caller.exten if caller else "")
            if caller_seat and call.placed_by is None:
                call.placed_by = caller_seat
            out.append(
                OutboundDial(
                    self.pbx, e.ts, caller_seat, call.remote, e.caller_uniqueid, call.linkedid
                )
            )
        elif dest.party.seat and caller_seat and caller is not None and caller.incoming:
            out.append(InternalCallPlaced(self.pbx, e.ts, caller_seat, dest.party.seat))

    def _on_dial_end(self, e: ev.DialEnded, out: list[Effect]) -> None:
        dest = self.channels.get(e.dest_uniqueid)
        if dest is None or dest.party.kind is not PartyKind.TRUNK:
            return
        call = self.calls.get(dest.linkedid)
        if call is not None and e.status:
            call.dial_status = e.status
            call.dial_ended_at = e.ts

    def _on_fax(self, e: ev.FaxFinished, out: list[Effect]) -> None:
        channel = self.channels.get(e.uniqueid)
        if channel is not None and (call := self.calls.get(channel.linkedid)) is not None:
            call.fax = True
            if call.answered_at is None and channel.up_at is not None:
                call.answered_at = channel.up_at

    def _on_abandon(self, e: ev.QueueAbandoned, out: list[Effect]) -> None:
        channel = self.channels.get(e.uniqueid)
        if channel is not None and (call := self.calls.get(channel.linkedid)) is not None:
            call.queue_abandoned = True

    def _on_boot(self, e: ev.PbxBooted, out: list[Effect]) -> None:
        if e.uptime < 0:
            return
        booted_at = e.ts - e.uptime - _BOOT_TOLERANCE_S
        dead = [uid for uid in self.stale if self.channels[uid].created_at < booted_at]
        self._vanish(dead, out)

    # --- bridges and hold -------------------------------------------------------------

    def _on_bridge_enter(self, e: ev.BridgeEntered, out: list[Effect]) -> None:
        channel = self.channels.get(e.uniqueid)
        if channel is None:
            return
        previous = self._leave_bridge(channel)
        self._enter_bridge(channel, e.bridge_id)
        self._refresh(e.ts, [e.uniqueid, *previous], out)

    def _on_bridge_leave(self, e: ev.BridgeLeft, out: list[Effect]) -> None:
        channel = self.channels.get(e.uniqueid)
        if channel is None or channel.bridge != e.bridge_id:
            return
        previous = self._leave_bridge(channel)
        self._refresh(e.ts, [e.uniqueid, *previous], out)

    def _on_hold(self, e: ev.HoldChanged, out: list[Effect]) -> None:
        channel = self.channels.get(e.uniqueid)
        if channel is None or channel.held == e.held:
            return
        channel.held = e.held
        self._refresh(e.ts, [e.uniqueid], out)

    def _enter_bridge(self, channel: Channel, bridge_id: str) -> None:
        channel.bridge = bridge_id
        members = self.bridges.setdefault(bridge_id, [])
        if channel.uniqueid not in members:
            members.append(channel.uniqueid)

    def _leave_bridge(self, channel: Channel) -> list[str]:
        """Take a channel out of its bridge; returns who stays behind there.

        Hold belongs to a bridge: an attended transfer puts the transferer on hold and then
        moves it to the consultation bridge without any ``Unhold``.
        """
        bridge_id = channel.bridge
        if bridge_id is None:
            return []
        channel.bridge = None
        channel.held = False
        members = self.bridges.get(bridge_id)
        if members is None:
            return []
        if channel.uniqueid in members:
            members.remove(channel.uniqueid)
        if not members:
            del self.bridges[bridge_id]
        return list(members)

    # --- talk accounting --------------------------------------------------------------

    def _component(self, uid: str) -> set[str]:
        seen = {uid}
        stack = [uid]
        while stack:
            channel = self.channels.get(stack.pop())
            if channel is None or channel.gone:
                continue
            neighbours: list[str] = []
            if channel.bridge is not None:
                neighbours.extend(self.bridges.get(channel.bridge, ()))
            if channel.party.local_pair:
                neighbours.extend(self.local_pairs.get(channel.party.local_pair, ()))
            for other in neighbours:
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        return seen

    def _refresh(self, at: float, seeds: Iterable[str], out: list[Effect]) -> None:
        """Bring the open links of every seat near ``seeds`` in line with the bridges."""
        touched: set[str] = set()
        components: dict[str, set[str]] = {}
        for seed in seeds:
            if seed in touched:
                continue
            component = self._component(seed)
            for uid in component:
                components[uid] = component
            touched |= component
        seats = {uid for uid in touched if self._is_seat(uid)}
        for uid in touched:
            seats.update(self.links.seats_linked_to(uid))
        for seat_uid in seats:
            component = components.get(seat_uid) or self._component(seat_uid)
            self._sync_seat(seat_uid, component, at, out)

    def _is_seat(self, uid: str) -> bool:
        channel = self.channels.get(uid)
        return channel is not None and channel.party.kind is PartyKind.SEAT

    def _sync_seat(self, seat_uid: str, component: set[str], at: float, out: list[Effect]) -> None:
        seat = self.channels.get(seat_uid)
        wanted: dict[str, bool] = {}
        other_seats = False
        if seat is not None and not seat.gone:
            for uid in component:
                member = self.channels.get(uid)
                if member is None or uid == seat_uid:
                    continue
                if member.party.kind is PartyKind.TRUNK:
                    wanted[uid] = seat.held
                elif member.party.kind is PartyKind.SEAT:
                    other_seats = True
        for link in list(self.links.links_of(seat_uid)):
            if wanted.get(link.ext) is not link.held:
                self._close(seat_uid, link.ext, at)
        for ext_uid, held in wanted.items():
            if self.links.find(seat_uid, ext_uid) is None:
                self._open(seat_uid, ext_uid, held, at)
        internal = other_seats and not wanted
        if internal and seat_uid not in self.links.internal_since:
            self.links.internal_since[seat_uid] = at
        elif not internal and seat_uid in self.links.internal_since:
            self._close_internal(seat_uid, at, out)

    def _open(self, seat_uid: str, ext_uid: str, held: bool, at: float) -> None:
        self.links.open(seat_uid, ext_uid, held, at)
        segment = self._segment(seat_uid, ext_uid)
        call = self._call_of(ext_uid)
        if segment is not None and call is not None and call.answered_at is None:
            call.answered_at = at

    def _close(self, seat_uid: str, ext_uid: str, at: float) -> None:
        link = self.links.pop(seat_uid, ext_uid)
        segment = self._segment(seat_uid, ext_uid)
        if segment is not None:
            close_link(segment, link, at)

    def _close_internal(self, seat_uid: str, at: float, out: list[Effect]) -> None:
        since = self.links.internal_since.pop(seat_uid)
        channel = self.channels.get(seat_uid)
        if channel is not None and channel.party.seat:
            out.append(InternalTalk(self.pbx, channel.party.seat, since, max(at, since)))

    def _call_of(self, ext_uid: str) -> Call | None:
        ext = self.channels.get(ext_uid)
        return self.calls.get(ext.linkedid) if ext else None

    def _segment(self, seat_uid: str, ext_uid: str) -> Segment | None:
        call = self._call_of(ext_uid)
        seat = self.channels.get(seat_uid)
        ext = self.channels.get(ext_uid)
        if call is None or seat is None or ext is None or seat.party.seat is None:
            return None
        key = (seat_uid, ext_uid)
        segment = call.segments.get(key)
        if segment is None:
            segment = Segment(seat.party.seat, seat.name, ext.name)
            call.segments[key] = segment
        return segment


_Handler = Callable[[CallTracker, Any, list[Effect]], None]
_HANDLERS: dict[type, _Handler] = {
    ev.ChannelCreated: CallTracker._on_created,
    ev.ChannelStateChanged: CallTracker._on_state,
    ev.ChannelHungUp: CallTracker._on_hangup,
    ev.DialStarted: CallTracker._on_dial_begin,
    ev.DialEnded: CallTracker._on_dial_end,
    ev.BridgeEntered: CallTracker._on_bridge_enter,
    ev.BridgeLeft: CallTracker._on_bridge_leave,
    ev.HoldChanged: CallTracker._on_hold,
    ev.FaxFinished: CallTracker._on_fax,
    ev.QueueAbandoned: CallTracker._on_abandon,
    ev.PbxBooted: CallTracker._on_boot,
}
