"""Customer numbers: E.164 normalisation and the callee's time zones (``phonenumbers``).

Both are cached: a number is looked at again and again while its call lasts (dial, answer,
hang-up, the store's hash), and parsing costs tens of microseconds that the decision path
should not pay twice.  The caches hold the numbers of the calls in flight on a large floor,
not a day's numbers: a floor dials hundreds of thousands of distinct numbers a day, and an
entry costs ~0.25 KB.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as pn_timezone

_UNKNOWN_ZONE = "Etc/Unknown"
_CACHE = 16_384
"""Numbers per cache: three times the calls in flight on a 5,000-seat floor."""


@lru_cache(maxsize=_CACHE)
def normalise(number: str, default_region: str) -> str:
    """``7203000104`` (region US) → ``+17203000104``; unparseable input is kept as digits.

    Keeping the digits (rather than failing) lets an odd dial string still match an odd
    opt-out entry recorded the same way.
    """
    parsed = _parse(number, default_region)
    if parsed is None:
        return "".join(ch for ch in number if ch.isdigit() or ch == "+")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_phone_number(number: str, default_region: str) -> bool:
    """A plausible number (length fits its country); used to reject bad import rows."""
    parsed = _parse(number, default_region)
    return parsed is not None and phonenumbers.is_possible_number(parsed)


def _parse(number: str, default_region: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(number, default_region)
    except phonenumbers.NumberParseException:
        return None


class ZoneFinder:
    """The callee's candidate time zones: a prefix override, else ``phonenumbers``, else site."""

    def __init__(
        self, default_region: str, site_zone: ZoneInfo, prefix_zones: Mapping[str, str]
    ) -> None:
        self._region = default_region
        self._site = site_zone
        # Longest prefix first, so "720" beats "7".
        self._prefixes = sorted(
            ((p, ZoneInfo(z)) for p, z in prefix_zones.items()), key=lambda pz: -len(pz[0])
        )
        self._zones = lru_cache(maxsize=_CACHE)(self._lookup)

    def zones(self, number: str) -> tuple[ZoneInfo, ...]:
        return self._zones(number)

    def _lookup(self, number: str) -> tuple[ZoneInfo, ...]:
        for prefix, zone in self._prefixes:
            if number.startswith(prefix):
                return (zone,)
        parsed = _parse(number, self._region)
        names = pn_timezone.time_zones_for_number(parsed) if parsed is not None else ()
        zones = tuple(ZoneInfo(n) for n in names if n != _UNKNOWN_ZONE)
        return zones or (self._site,)
