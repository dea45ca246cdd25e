"""Quota events and the end-of-day report on the live feed.

* ``quota/<kind>`` — ``quota_met``, ``behind_pace``, ``eod_shortfall``, ``grace_shortfall``: one
  message per seat and event, not retained (they are moments, not a state);
* ``reports/eod`` — retained: the latest end-of-day report, so a wallboard that connects after
  17:50 still shows the day's numbers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from ctid.mqtt.feed import Offer
from ctid.policy.engine import QuotaEvent
from ctid.policy.report import EodReport, report_json

SEAT_EVENTS = frozenset({"quota_met", "behind_pace", "eod_shortfall", "grace_shortfall"})


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def quota_payload(event: QuotaEvent, team: str | None) -> dict[str, Any]:
    """One body for every kind: ``quota`` names the met quota, ``shortfall`` what is missing."""
    return {
        "kind": event.kind,
        "seat": event.seat,
        "team": team,
        "site": event.site,
        "day": event.day.isoformat(),
        "quota": event.quota,
        "shortfall": {quota: round(missing, 2) for quota, missing in event.shortfall.items()},
        "makeup_day": event.makeup_day.isoformat() if event.makeup_day else None,
        "policy_version": event.policy_version,
        "time": _utc(event.at),
    }


def report_payload(report: EodReport, due: QuotaEvent) -> dict[str, Any]:
    """The report's JSON file (seats, robots, teams) with its day, site and policy version."""
    head = {
        "day": report.day.isoformat(),
        "site": due.site,
        "policy_version": due.policy_version,
        "time": _utc(report.generated_at),
    }
    return head | report_json(report)


class QuotaFeed:
    def __init__(self, publisher: Offer, team_of: Callable[[str], str]) -> None:
        """``team_of``: a seat's team as the quota policy sees it."""
        self._publisher = publisher
        self._team_of = team_of

    def event(self, event: QuotaEvent) -> None:
        """``quota/<kind>`` for a seat event; ``report_due`` is :meth:`report`'s business."""
        if event.kind in SEAT_EVENTS:
            team = self._team_of(event.seat) if event.seat else None
            self._publisher.offer(f"quota/{event.kind}", quota_payload(event, team))

    def report(self, report: EodReport, due: QuotaEvent) -> None:
        self._publisher.offer("reports/eod", report_payload(report, due), retain=True)
