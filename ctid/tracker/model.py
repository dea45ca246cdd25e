"""The tracker's records: live channels, calls and per-seat talk segments, and what it emits."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ctid.tracker.endpoints import Party


class Direction(enum.StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class Outcome(enum.StrEnum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    CONGESTION = "congestion"
    FAILED = "failed"
    ABANDONED = "abandoned"


@dataclass(slots=True)
class Channel:
    uniqueid: str
    linkedid: str
    name: str
    party: Party
    incoming: bool
    """Created by an incoming request (state Ring) rather than dialled or originated."""
    created_at: float
    exten: str = ""
    bridge: str | None = None
    held: bool = False
    up_at: float | None = None
    gone: bool = False


@dataclass(slots=True)
class Segment:
    """The time one seat channel was connected with one external channel of a call."""

    seat: str
    seat_channel: str
    ext_channel: str
    talk_seconds: float = 0.0
    hold_seconds: float = 0.0
    # Tuples: most segments of open calls have no closed interval yet, and the empty tuple is
    # shared where two empty lists would cost ~110 bytes a segment.
    talk_intervals: tuple[tuple[float, float], ...] = ()
    hold_intervals: tuple[tuple[float, float], ...] = ()

    @property
    def start(self) -> float | None:
        starts = [a for a, _ in self.talk_intervals] + [a for a, _ in self.hold_intervals]
        return min(starts) if starts else None


@dataclass(slots=True)
class Call:
    """A customer call: everything around one trunk channel's ``linkedid``."""

    pbx: str
    linkedid: str
    direction: Direction
    started_at: float
    remote: str = ""
    trunk_channel: str = ""
    """Name of the trunk channel the call began with (``PJSIP/carrier-0000001a``)."""
    placed_by: str | None = None
    """Seat that dialled the customer (outbound, incl. click-to-call)."""
    dial_status: str = ""
    dial_started_at: float | None = None
    dial_ended_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    cause: int | None = None
    fax: bool = False
    queue_abandoned: bool = False
    interrupted: bool = False
    """Its channels vanished in an AMI gap (PBX crash or restart); times are provable bounds."""
    outcome: Outcome | None = None
    segments: dict[tuple[str, str], Segment] = field(default_factory=dict)

    @property
    def talk_seconds(self) -> float:
        return sum(s.talk_seconds for s in self.segments.values())

    @property
    def hold_seconds(self) -> float:
        return sum(s.hold_seconds for s in self.segments.values())

    @property
    def seat(self) -> str | None:
        """The seat the call belongs to first: its dialler, else the first seat that talked."""
        if self.placed_by:
            return self.placed_by
        first = min(self.segments.values(), key=lambda s: s.start or 0.0, default=None)
        return first.seat if first else None

    def seats_talked(self) -> list[str]:
        seen: dict[str, None] = {}
        for segment in sorted(self.segments.values(), key=lambda s: s.start or 0.0):
            seen.setdefault(segment.seat, None)
        return list(seen)

    @property
    def ring_seconds(self) -> float | None:
        if self.direction is Direction.OUTBOUND:
            if self.dial_started_at is None or self.dial_ended_at is None:
                return None
            return max(0.0, self.dial_ended_at - self.dial_started_at)
        end = self.answered_at if self.answered_at is not None else self.ended_at
        return None if end is None else max(0.0, end - self.started_at)


# --- effects: what the tracker asks the outside world to do ------------------------------


@dataclass(frozen=True, slots=True)
class CallEnded:
    call: Call


@dataclass(frozen=True, slots=True)
class OutboundDial:
    """A seat started dialling a customer; policy decides here, before the callee answers."""

    pbx: str
    ts: float
    seat: str | None
    number: str
    caller_uniqueid: str | None
    linkedid: str


@dataclass(frozen=True, slots=True)
class InternalTalk:
    """A stretch of seat-to-seat talk with no customer on the line."""

    pbx: str
    seat: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class InternalCallPlaced:
    pbx: str
    ts: float
    seat: str
    target_seat: str


Effect = CallEnded | OutboundDial | InternalTalk | InternalCallPlaced
