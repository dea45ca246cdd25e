"""Each seat's live state — idle, ringing, talking, hold, paused, offline, wrap-up — and since when.

Pure: no clock reads, no I/O.  Three inputs, all with PBX times:

* **presence events** (:mod:`ctid.ami.presence`) via :meth:`SeatStateBoard.on_presence`:
  reachability (offline) and queue pauses;
* **tracker effects** via ``board(effect)`` (an effect sink): a call's end starts wrap-up;
* **the trackers' own state**, read at query time by :meth:`SeatStateBoard.snapshot`: a seat
  channel with an open non-held link to a customer is *talking*, only held links *hold*,
  seat-to-seat talk is *talking*, any other live seat channel is *ringing* (its phone rings or
  it is dialling out).

Precedence when several hold: talking > hold > ringing > offline > paused > wrap-up > idle —
a call in progress is what the floor wants to see, whatever the registration says.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ctid.ami.presence import MemberPaused, PresenceEvent
from ctid.tracker.model import CallEnded, Effect, InternalTalk
from ctid.tracker.tracker import CallTracker


class SeatState(enum.StrEnum):
    IDLE = "idle"
    RINGING = "ringing"
    TALKING = "talking"
    HOLD = "hold"
    PAUSED = "paused"
    OFFLINE = "offline"
    WRAP_UP = "wrap_up"


_BUSY_RANK = {SeatState.TALKING: 0, SeatState.HOLD: 1, SeatState.RINGING: 2}
_TRANSIENT = frozenset({SeatState.TALKING, SeatState.HOLD, SeatState.RINGING, SeatState.WRAP_UP})
"""States that end without an input reaching the board (the tracker's channels go, wrap-up
runs out): seats in them are re-derived at every look."""


@dataclass(frozen=True, slots=True)
class SeatStatus:
    state: SeatState
    since: float
    """PBX time the seat entered ``state``."""


SeatResolver = Callable[[str], str | None]
"""``PJSIP/1008`` → seat id, or ``None`` for a device that is nobody's seat."""


def busy_seats(tracker: CallTracker) -> dict[str, SeatStatus]:
    """Seats the tracker has on a live channel, with the busiest state among their channels.

    Channels whose fate is unknown after an AMI gap (``tracker.stale``) are left out until the
    resync settles them: showing a seat on a call that may have ended is worse than idle.
    """
    out: dict[str, SeatStatus] = {}
    by_seat = tracker.links.by_seat
    internal = tracker.links.internal_since
    for uid, channel in tracker.channels.items():
        seat = channel.party.seat
        if seat is None or channel.gone or uid in tracker.stale:
            continue
        links = by_seat.get(uid)
        if links:
            talking = [link.since for link in links if not link.held]
            if talking:
                status = SeatStatus(SeatState.TALKING, min(talking))
            else:
                status = SeatStatus(SeatState.HOLD, min(link.since for link in links))
        elif uid in internal:
            status = SeatStatus(SeatState.TALKING, internal[uid])
        else:
            status = SeatStatus(SeatState.RINGING, channel.created_at)
        known = out.get(seat)
        if known is None or (_BUSY_RANK[status.state], status.since) < (
            _BUSY_RANK[known.state],
            known.since,
        ):
            out[seat] = status
    return out


class SeatStateBoard:
    """Live seat states for the floor; ``wrap_up_seconds`` of wrap-up after a customer call."""

    def __init__(self, resolve: SeatResolver, *, wrap_up_seconds: float = 0.0, start: float = 0.0):
        self._resolve = resolve
        self._wrap_up = max(0.0, wrap_up_seconds)
        self._start = start
        """Idle-since for a seat no event has touched yet (the daemon's start, PBX time)."""
        self._unreachable: dict[str, dict[str, float]] = {}
        """seat → device → when it went offline; a seat is offline while *every* device it was
        heard on is unreachable."""
        self._reachable: dict[str, dict[str, float]] = {}
        self._paused: dict[str, dict[str, tuple[bool, float]]] = {}
        """seat → queue → (paused, since); paused while paused in every queue it belongs to."""
        self._call_ended: dict[str, float] = {}
        """seat → end of the last customer call it talked in (wrap-up starts there)."""
        self._active_ended: dict[str, float] = {}
        """seat → end of its last activity of any kind (for how long it has been idle)."""
        self._last: dict[str, SeatStatus] = {}
        self._last_now = start
        self._dirty: set[str] = set()
        self._changing: set[str] = set()

    @property
    def default(self) -> SeatStatus:
        """The status of a seat nothing is known about yet."""
        return SeatStatus(SeatState.IDLE, self._start)

    # --- inputs ---------------------------------------------------------------------

    def on_presence(self, event: PresenceEvent) -> None:
        seat = self._resolve(event.device)
        if seat is None:
            return
        self._dirty.add(seat)
        if isinstance(event, MemberPaused):
            queues = self._paused.setdefault(seat, {})
            was = queues.get(event.queue)
            if was is None or was[0] != event.paused:
                queues[event.queue] = (event.paused, event.ts)
            if not event.paused:
                self._ended(seat, event.ts)
            return
        offline, online = self._unreachable, self._reachable
        if event.online:
            offline.get(seat, {}).pop(event.device, None)
            if event.device not in online.setdefault(seat, {}):
                online[seat][event.device] = event.ts
                self._ended(seat, event.ts)
        else:
            online.get(seat, {}).pop(event.device, None)
            offline.setdefault(seat, {}).setdefault(event.device, event.ts)

    def __call__(self, effect: Effect) -> None:
        """Effect sink: note when calls end, for wrap-up and idle time."""
        if isinstance(effect, CallEnded):
            call = effect.call
            end = call.ended_at if call.ended_at is not None else call.started_at
            for seat in call.seats_talked():
                self._call_ended[seat] = max(end, self._call_ended.get(seat, end))
                self._ended(seat, end)
            if call.placed_by is not None:
                self._ended(call.placed_by, end)
        elif isinstance(effect, InternalTalk):
            self._ended(effect.seat, effect.end)

    def _ended(self, seat: str, at: float) -> None:
        self._dirty.add(seat)
        self._active_ended[seat] = max(at, self._active_ended.get(seat, at))

    # --- query ----------------------------------------------------------------------

    def snapshot(self, trackers: Iterable[CallTracker], now: float) -> Mapping[str, SeatStatus]:
        """Every seat anything is known about; seats missing from it are idle since ``start``.

        The mapping is the board's own, updated in place by the next call: read it, do not
        keep it (its identity staying the same lets the exposition skip rescanning its keys).

        Only seats that can have changed are re-derived (touched by an input, busy now or at
        the previous look, or in wrap-up), so a quiet floor of thousands costs next to nothing.
        """
        busy: dict[str, SeatStatus] = {}
        for tracker in trackers:
            for seat, status in busy_seats(tracker).items():
                known = busy.get(seat)
                if known is None or _BUSY_RANK[status.state] < _BUSY_RANK[known.state]:
                    busy[seat] = status
        out = self._last
        recheck = self._dirty | self._changing | busy.keys()
        self._dirty = set()
        self._changing = set()
        for seat in recheck:
            status = busy.get(seat) or self._quiet_state(seat, now, out.get(seat))
            out[seat] = status
            if status.state in _TRANSIENT:
                self._changing.add(seat)
        self._last_now = now
        return out

    def _quiet_state(self, seat: str, now: float, previous: SeatStatus | None) -> SeatStatus:
        """The state of a seat with no live channel."""
        gone = self._unreachable.get(seat)
        if gone and not self._reachable.get(seat):
            return SeatStatus(SeatState.OFFLINE, min(gone.values()))
        queues = self._paused.get(seat)
        if queues and all(paused for paused, _ in queues.values()):
            return SeatStatus(SeatState.PAUSED, max(since for _, since in queues.values()))
        ended = self._call_ended.get(seat)
        if ended is not None and now < ended + self._wrap_up:
            return SeatStatus(SeatState.WRAP_UP, ended)
        idle_since = self._active_ended.get(seat, self._start)
        if ended is not None:
            idle_since = max(idle_since, ended + self._wrap_up)
        if previous is not None and previous.state is SeatState.IDLE:
            idle_since = max(idle_since, previous.since)
        elif previous is not None and idle_since < previous.since:
            # It left a state we saw with no event telling when (a dial that never reached a
            # customer, a voicemail check): it was still busy at the previous look.
            idle_since = max(previous.since, self._last_now)
        return SeatStatus(SeatState.IDLE, idle_since)


class SeatStateView:
    """The board as the metrics and the MQTT feed see it: ``view(now)`` → seat → status.

    ``now`` is wall-clock time, turned into PBX time by ``pbx_now``; statuses carry PBX times,
    which equal wall-clock times on PBXs kept in sync by NTP (as the daily tallies assume).
    """

    def __init__(
        self,
        board: SeatStateBoard,
        trackers: Callable[[], Iterable[CallTracker]],
        pbx_now: Callable[[float], float] = float,
    ) -> None:
        self.board = board
        self._trackers = trackers
        self._pbx_now = pbx_now

    @property
    def default(self) -> SeatStatus:
        return self.board.default

    def __call__(self, now: float) -> Mapping[str, SeatStatus]:
        return self.board.snapshot(self._trackers(), self._pbx_now(now))
