"""Open seat↔customer links and seat↔seat stretches, turned into talk and hold seconds.

A seat is *talking* with a customer while its channel and the customer's trunk channel are in
one connected group of bridges (the two halves of a ``Local`` channel join their bridges) and
the seat channel is not on hold; on hold it accrues hold seconds instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctid.tracker.model import Segment


@dataclass(slots=True)
class OpenLink:
    held: bool
    since: float


def close_link(segment: Segment, link: OpenLink, until: float) -> None:
    """Account an open link's time in its segment."""
    end = max(until, link.since)
    if link.held:
        segment.hold_seconds += end - link.since
        segment.hold_intervals.append((link.since, end))
    else:
        segment.talk_seconds += end - link.since
        segment.talk_intervals.append((link.since, end))


class LinkBook:
    """Which seat channel is linked to which trunk channel right now, and since when."""

    def __init__(self) -> None:
        self.by_seat: dict[str, dict[str, OpenLink]] = {}
        self.by_ext: dict[str, list[str]] = {}  # lists: one or two seats, far smaller than sets
        self.internal_since: dict[str, float] = {}

    def links_of(self, seat_uid: str) -> dict[str, OpenLink]:
        return self.by_seat.get(seat_uid, {})

    def seats_linked_to(self, ext_uid: str) -> list[str]:
        return self.by_ext.get(ext_uid, [])

    def open(self, seat_uid: str, ext_uid: str, held: bool, at: float) -> None:
        self.by_seat.setdefault(seat_uid, {})[ext_uid] = OpenLink(held, at)
        seats = self.by_ext.setdefault(ext_uid, [])
        if seat_uid not in seats:
            seats.append(seat_uid)

    def pop(self, seat_uid: str, ext_uid: str) -> OpenLink:
        links = self.by_seat[seat_uid]
        link = links.pop(ext_uid)
        if not links:
            del self.by_seat[seat_uid]
        seats = self.by_ext[ext_uid]
        if seat_uid in seats:
            seats.remove(seat_uid)
        if not seats:
            del self.by_ext[ext_uid]
        return link

    def all_links(self) -> list[tuple[str, str]]:
        return [(s, e) for s, links in self.by_seat.items() for e in links]
