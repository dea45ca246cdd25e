"""Calling hours: the site's own dialing windows and a window in the callee's local time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ctid.compliance.numbers import ZoneFinder
from ctid.compliance.settings import CallingHoursSettings, Window, parse_window


def _inside(moment: dt.datetime, windows: list[Window]) -> bool:
    clock = moment.time()
    return any(start <= clock < end for start, end in windows)


class CallingHours:
    def __init__(
        self, settings: CallingHoursSettings, site_zone: ZoneInfo, default_region: str
    ) -> None:
        self._site_zone = site_zone
        self._site_windows = [parse_window(w) for w in settings.site_windows]
        self._callee_window = parse_window(settings.callee_window)
        self._zones = ZoneFinder(default_region, site_zone, settings.prefix_zones)

    def violation(self, number: str, ts: float) -> str | None:
        """Why dialling ``number`` at PBX time ``ts`` is not allowed, or None.

        A number whose region spans several zones must be inside the window in *every* one:
        when in doubt about the callee's clock, the stricter reading is the lawful one.
        """
        utc = dt.datetime.fromtimestamp(ts, dt.UTC)
        site = utc.astimezone(self._site_zone)
        if not _inside(site, self._site_windows):
            return f"site time {site:%H:%M} {self._site_zone.key} outside the dialing windows"
        for zone in self._zones.zones(number):
            local = utc.astimezone(zone)
            if not _inside(local, [self._callee_window]):
                return f"callee time {local:%H:%M} {zone.key} outside the calling window"
        return None
