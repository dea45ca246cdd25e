"""Per-seat and per-PBX metrics computed at scrape time from the tracker's own state.

Scrape-time collectors cost nothing on the event loop between scrapes; labels are bounded
(site, team, seat, pbx, direction, outcome) and never carry a number or a channel id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ctid.tracker.tallies import DailyTallies


@dataclass(frozen=True, slots=True)
class SeatLabels:
    team: str
    name: str = ""


class PbxStatus(Protocol):
    """What the health metrics need to know about one PBX link."""

    @property
    def name(self) -> str: ...
    @property
    def connected(self) -> bool: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def frames(self) -> int: ...
    @property
    def events_applied(self) -> int: ...


LiveSeconds = Callable[[float], Mapping[str, tuple[float, float]]]


class FloorCollector:
    def __init__(
        self,
        site: str,
        seats: Mapping[str, SeatLabels],
        tallies: DailyTallies,
        live: Sequence[LiveSeconds],
        clock: Callable[[], float],
    ) -> None:
        self._site = site
        self._seats = seats
        self._tallies = tallies
        self._live = live
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        today = self._tallies.days.get(self._tallies.local_day(now), {})
        live: dict[str, tuple[float, float]] = {}
        for source in self._live:
            for seat, (open_talk, open_hold) in source(now).items():
                old_talk, old_hold = live.get(seat, (0.0, 0.0))
                live[seat] = (old_talk + open_talk, old_hold + open_hold)
        labels = ["site", "team", "seat"]
        talk = GaugeMetricFamily(
            "ctid_seat_talk_seconds_today",
            "Seconds the seat talked with customers today (site time zone), hold excluded, "
            "including calls in progress",
            labels=labels,
        )
        hold = GaugeMetricFamily(
            "ctid_seat_hold_seconds_today",
            "Seconds the seat had a customer on hold today",
            labels=labels,
        )
        calls = GaugeMetricFamily(
            "ctid_seat_calls_today",
            "Customer calls the seat placed or talked in today, by direction",
            labels=[*labels, "direction"],
        )
        answered = GaugeMetricFamily(
            "ctid_seat_answered_calls_today",
            "Customer calls the seat talked in today",
            labels=labels,
        )
        effective = GaugeMetricFamily(
            "ctid_seat_effective_calls_today",
            "Answered customer calls with at least the effective-call talk threshold today",
            labels=labels,
        )
        for seat in sorted(set(self._seats) | set(today) | set(live)):
            values = [self._site, self._seats.get(seat, SeatLabels("default")).team, seat]
            tally = today.get(seat)
            live_talk, live_hold = live.get(seat, (0.0, 0.0))
            talk.add_metric(values, (tally.talk_seconds if tally else 0.0) + live_talk)
            hold.add_metric(values, (tally.hold_seconds if tally else 0.0) + live_hold)
            calls.add_metric([*values, "outbound"], tally.outbound if tally else 0)
            calls.add_metric([*values, "inbound"], tally.inbound if tally else 0)
            calls.add_metric([*values, "transfer_in"], tally.transfers_in if tally else 0)
            answered.add_metric(values, tally.answered if tally else 0)
            effective.add_metric(values, tally.effective if tally else 0)
        yield from (talk, hold, calls, answered, effective)


class PbxCollector:
    def __init__(self, links: Callable[[], Sequence[PbxStatus]]) -> None:
        self._links = links

    def collect(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "ctid_ami_connected",
            "1 while the AMI link to the PBX is up and logged in",
            labels=["pbx"],
        )
        frames = CounterMetricFamily(
            "ctid_ami_frames", "AMI frames received from the PBX", labels=["pbx"]
        )
        applied = CounterMetricFamily(
            "ctid_ami_events_applied", "AMI events the call tracker used", labels=["pbx"]
        )
        reconnects = CounterMetricFamily(
            "ctid_ami_reconnects", "Times the AMI link was re-established", labels=["pbx"]
        )
        for link in self._links():
            connected.add_metric([link.name], 1.0 if link.connected else 0.0)
            frames.add_metric([link.name], link.frames)
            applied.add_metric([link.name], link.events_applied)
            reconnects.add_metric([link.name], link.reconnects)
        yield from (connected, frames, applied, reconnects)
