"""Talk, hold and seat-to-seat intervals of one recorded call, to the microsecond.

Used only when templates are built (``make_templates``).  The ground truth shipped with the
recordings is rounded to milliseconds; summed over thousands of simulated calls that rounding
would add up, so the builder measures each interval again from the same ``Timestamp`` headers,
by the same rule the truth states (a seat talks while its channel shares a bridge with a
carrier channel and is not on hold), and checks that both agree to the millisecond.

Only plain bridges are followed (no ``Local`` channel pairs): the templates have none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ctid.simulate.frames import is_carrier_channel, is_seat_channel

Key = tuple[str, str]
"""(seat channel, carrier channel), or (seat channel, "") for seat-to-seat talk."""


@dataclass(frozen=True, slots=True)
class Interval:
    key: Key
    state: str
    """``talk`` or ``hold`` (seat-to-seat intervals are always ``talk``)."""
    start: float
    end: float


def intervals(events: Sequence[tuple[float, dict[str, str]]]) -> list[Interval]:
    """Every talk/hold interval of every (seat, carrier) pair and of seat-to-seat talk."""
    bridges: dict[str, list[str]] = {}
    held: set[str] = set()
    opened: dict[Key, tuple[str, float]] = {}
    out: list[Interval] = []
    for ts, headers in events:
        if not _apply(headers, bridges, held):
            continue
        now = _state(bridges, held)
        for key, (state, since) in list(opened.items()):
            if now.get(key) != state:
                out.append(Interval(key, state, since, ts))
                del opened[key]
        for key, state in now.items():
            if key not in opened:
                opened[key] = (state, ts)
    if opened:
        raise ValueError(f"intervals still open at the end of the recording: {sorted(opened)}")
    return out


def _apply(headers: dict[str, str], bridges: dict[str, list[str]], held: set[str]) -> bool:
    """Apply one event; True if it can change who talks."""
    event, channel = headers.get("Event", ""), headers.get("Channel", "")
    if event == "BridgeEnter":
        bridges.setdefault(headers["BridgeUniqueid"], []).append(channel)
    elif event == "BridgeLeave":
        members = bridges.get(headers["BridgeUniqueid"], [])
        if channel in members:
            members.remove(channel)
    elif event == "Hold":
        held.add(channel)
    elif event in ("Unhold", "Hangup"):
        held.discard(channel)
    else:
        return False
    return True


def _state(bridges: dict[str, list[str]], held: set[str]) -> dict[Key, str]:
    state: dict[Key, str] = {}
    for members in bridges.values():
        seats = [c for c in members if is_seat_channel(c)]
        carriers = [c for c in members if is_carrier_channel(c)]
        for seat in seats:
            for carrier in carriers:
                state[(seat, carrier)] = "hold" if seat in held else "talk"
            if not carriers and len(seats) > 1:
                state[(seat, "")] = "talk"
    return state


def totals(found: Sequence[Interval]) -> dict[Key, tuple[float, float]]:
    """(talk, hold) seconds per key."""
    out: dict[Key, tuple[float, float]] = {}
    for interval in found:
        talk, hold = out.get(interval.key, (0.0, 0.0))
        length = interval.end - interval.start
        if interval.state == "talk":
            talk += length
        else:
            hold += length
        out[interval.key] = (talk, hold)
    return out


def state_at(found: Sequence[Interval], instant: float) -> dict[Key, str]:
    """Which keys talk or are held at ``instant``."""
    return {i.key: i.state for i in found if i.start < instant < i.end}
