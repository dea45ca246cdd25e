"""Who is on a channel: a seat, a trunk (the customer side), a Local half, or something else.

Channel names look like ``PJSIP/1001-0000002f`` or ``Local/1006@seats-00000000;1``; the
endpoint is the part between the technology and the last ``-``.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass

PHONE_TECHNOLOGIES = frozenset({"PJSIP", "SIP", "IAX2", "DAHDI", "WebRTC"})


class PartyKind(enum.Enum):
    SEAT = "seat"
    TRUNK = "trunk"
    LOCAL = "local"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Party:
    kind: PartyKind
    endpoint: str
    seat: str | None = None
    local_pair: str | None = None
    """For ``Local/...;1`` and ``;2``: the name both halves share, to join their bridges."""


def split_channel(name: str) -> tuple[str, str]:
    """``PJSIP/1001-0000002f`` → (``PJSIP``, ``1001``)."""
    tech, _, rest = name.partition("/")
    endpoint = rest.rsplit("-", 1)[0] if "-" in rest else rest
    return tech, endpoint


class EndpointDirectory:
    """Classifies channel names.

    ``trunks`` lists trunk endpoints; when it is empty, endpoints whose name is not all digits
    are trunks (extensions are numbers, carriers have names), which fits most PBXs without
    any configuration.  ``seats`` maps endpoint names to seat ids; phones not listed there are
    nobody's seat.  When it is empty every phone that is not a trunk is a seat of its own name.
    """

    def __init__(
        self, seats: Mapping[str, str] | None = None, trunks: Collection[str] | None = None
    ) -> None:
        self._seats = dict(seats or {})
        self._trunks = frozenset(trunks or ())
        self._cache: dict[str, Party] = {}

    def classify(self, channel: str) -> Party:
        tech, endpoint = split_channel(channel)
        if tech == "Local":
            return Party(PartyKind.LOCAL, endpoint, local_pair=channel.rsplit(";", 1)[0])
        key = f"{tech}/{endpoint}"
        party = self._cache.get(key)
        if party is None:
            party = self._classify_endpoint(tech, endpoint)
            if len(self._cache) < 100_000:
                self._cache[key] = party
        return party

    def _classify_endpoint(self, tech: str, endpoint: str) -> Party:
        if tech not in PHONE_TECHNOLOGIES:
            return Party(PartyKind.OTHER, endpoint)
        if endpoint in self._trunks:
            return Party(PartyKind.TRUNK, endpoint)
        if endpoint in self._seats:
            return Party(PartyKind.SEAT, endpoint, seat=self._seats[endpoint])
        if not self._trunks and not endpoint.isdigit():
            return Party(PartyKind.TRUNK, endpoint)
        if self._seats:
            return Party(PartyKind.OTHER, endpoint)
        return Party(PartyKind.SEAT, endpoint, seat=endpoint)
