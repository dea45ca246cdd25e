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
    ext: str
    """The trunk channel's uniqueid."""
    held: bool
    since: float


def close_link(segment: Segment, link: OpenLink, until: float) -> None:
    """Account an open link's time in its segment."""
    end = max(until, link.since)
    if link.held:
        segment.hold_seconds += end - link.since
        segment.hold_intervals += ((link.since, end),)
    else:
        segment.talk_seconds += end - link.since
        segment.talk_intervals += ((link.since, end),)


class LinkBook:
    """Which seat channel is linked to which trunk channel right now, and since when.

    Lists, not dicts: a seat channel has one link nearly always (a dict of one costs 184 bytes,
    a list of one 64, and an open call ~2 KB in all).
    """

    def __init__(self) -> None:
        self.by_seat: dict[str, list[OpenLink]] = {}
        self.by_ext: dict[str, list[str]] = {}  # one or two seats
        self.internal_since: dict[str, float] = {}

    def links_of(self, seat_uid: str) -> list[OpenLink]:
        return self.by_seat.get(seat_uid, [])

    def find(self, seat_uid: str, ext_uid: str) -> OpenLink | None:
        links = self.by_seat.get(seat_uid, [])
        at = _position(links, ext_uid)
        return None if at is None else links[at]

    def seats_linked_to(self, ext_uid: str) -> list[str]:
        return self.by_ext.get(ext_uid, [])

    def open(self, seat_uid: str, ext_uid: str, held: bool, at: float) -> None:
        link = OpenLink(ext_uid, held, at)
        links = self.by_seat.get(seat_uid)
        if links is None:
            self.by_seat[seat_uid] = [link]  # a literal: no room for more, 64 bytes
        elif (known := _position(links, ext_uid)) is not None:
            links[known] = link
        else:
            links.append(link)
        seats = self.by_ext.get(ext_uid)
        if seats is None:
            self.by_ext[ext_uid] = [seat_uid]
        elif seat_uid not in seats:
            seats.append(seat_uid)

    def pop(self, seat_uid: str, ext_uid: str) -> OpenLink:
        """The link, removed; KeyError when there is none."""
        links = self.by_seat[seat_uid]
        at = _position(links, ext_uid)
        if at is None:
            raise KeyError((seat_uid, ext_uid))
        link = links.pop(at)
        if not links:
            del self.by_seat[seat_uid]
        seats = self.by_ext[ext_uid]
        if seat_uid in seats:
            seats.remove(seat_uid)
        if not seats:
            del self.by_ext[ext_uid]
        return link

    def all_links(self) -> list[tuple[str, str]]:
        return [(s, link.ext) for s, links in self.by_seat.items() for link in links]


def _position(links: list[OpenLink], ext_uid: str) -> int | None:
    """Where the link to ``ext_uid`` is in a seat's links (one or two of them)."""
    for at, link in enumerate(links):
        if link.ext == ext_uid:
            return at
    return None
