"""Per-seat metrics computed at scrape time from the tallies, the trackers and the seat board.

:class:`FloorCollector` is a fast source for :class:`ctid.metrics.exposition.Exposition`
(``render``); its ``collect`` yields the same samples through prometheus_client for a plain
registry and for the tests that hold the fast text to it.  Labels are site, team and seat
(plus direction, outcome, state or quota where a family says so) — never a number or a
channel id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any, Protocol, cast

from prometheus_client.core import Metric

from ctid.live.seat_state import SeatStatus
from ctid.metrics.exposition import Formatting, label_string
from ctid.metrics.health import PbxCollector, PbxStatus
from ctid.metrics.quota import QuotaProvider, QuotaStatus
from ctid.metrics.seat_families import Enum, Fixed, Pairs, Quota, Scalar, SeatFamily
from ctid.metrics.seat_outcomes import SeatOutcomes
from ctid.tracker.tallies import DailyTallies, SeatTally

__all__ = [
    "FloorCollector",
    "LiveSeconds",
    "PbxCollector",
    "PbxStatus",
    "SeatLabels",
    "merge_open_seconds",
]


@dataclass(frozen=True, slots=True)
class SeatLabels:
    team: str
    name: str = ""


LiveSeconds = Callable[[float], Mapping[str, tuple[float, float]]]


def merge_open_seconds(
    parts: Sequence[Mapping[str, tuple[float, float]]],
) -> Mapping[str, tuple[float, float]]:
    """Seat → (talk, hold) summed over several sources (one per PBX); one source as it is."""
    if len(parts) == 1:
        return parts[0]
    merged: dict[str, tuple[float, float]] = {}
    for part in parts:
        for seat, (talk, hold) in part.items():
            old_talk, old_hold = merged.get(seat, (0.0, 0.0))
            merged[seat] = (old_talk + talk, old_hold + hold)
    return merged


"""Wall-clock now → seat → (talk, hold) seconds in calls still open."""


class SeatStates(Protocol):
    """Live seat states (:class:`ctid.live.seat_state.SeatStateView`)."""

    def __call__(self, now: float) -> Mapping[str, SeatStatus]: ...

    @property
    def default(self) -> SeatStatus:
        """The status of a seat nothing is known about."""
        ...


SEATS_PER_SLICE = 200
"""Seats read between two turns of the event loop: ~1 ms with two quotas each (the quotas are
most of it, ~5 µs a seat), so a compliance decision waits at most that long for a scrape."""
_ZERO = SeatTally()
_TALK = attrgetter("talk_seconds")
_HOLD = attrgetter("hold_seconds")
_COUNTS = attrgetter("outbound", "inbound", "transfers_in", "answered", "effective", "faxes")
"""A seat's counts as one tuple: the count families share this column and pick from it."""
_DIRECTIONS = ("outbound", "inbound", "transfer_in")


class _Families:
    """The per-seat families, one set per collector: each family caches its last render."""

    def __init__(self) -> None:
        self.talk = Scalar(
            "ctid_seat_talk_seconds_today",
            "Seconds the seat talked with customers today (site time zone), hold excluded, "
            "including calls in progress",
            seconds=True,
        )
        self.hold = Scalar(
            "ctid_seat_hold_seconds_today",
            "Seconds the seat had a customer on hold today, including calls in progress",
            seconds=True,
        )
        self.calls = Fixed(
            "ctid_seat_calls_today",
            "Customer calls of the seat today, by direction: placed (outbound), taken (inbound), "
            "transferred to it (transfer_in)",
            "direction",
            _DIRECTIONS,
            pick=itemgetter(0, 1, 2),
        )
        self.outcomes = Pairs(
            "ctid_seat_outbound_calls_today",
            "Outbound calls the seat placed today, by outcome (only outcomes seen today)",
            "outcome",
        )
        self.answered = Scalar(
            "ctid_seat_answered_calls_today",
            "Customer calls the seat talked in today",
            pick=itemgetter(3),
        )
        self.effective = Scalar(
            "ctid_seat_effective_calls_today",
            "Answered customer calls with at least the effective-call talk threshold today",
            pick=itemgetter(4),
        )
        self.faxes = Scalar(
            "ctid_seat_faxes_today", "Fax calls the seat placed today", pick=itemgetter(5)
        )
        self.state = Enum(
            "ctid_seat_state",
            "1 for the seat's current state: "
            "idle, ringing, talking, hold, paused, offline, wrap_up",
            "state",
            pick=attrgetter("state"),
        )
        self.state_since = Scalar(
            "ctid_seat_state_since_timestamp_seconds",
            "When the seat entered its current state (epoch seconds); "
            "time in state = time() - this",
            seconds=True,
            pick=attrgetter("since"),
        )
        self.quota_target = Quota(
            "ctid_seat_quota_target",
            "Today's target per quota, in the quota's base unit (seconds, calls)",
            lambda q: q.target,
        )
        self.quota_ratio = Quota(
            "ctid_seat_quota_attainment_ratio",
            "Share of today's target attained, per quota",
            lambda q: q.attainment_ratio,
        )
        self.quota_pace = Quota(
            "ctid_seat_quota_pace_status",
            "Pace against the share of the quota due by now: -1 behind, 0 on track, 1 ahead",
            lambda q: int(q.pace),
        )


class _SeatIndex:
    """Seat order and pre-escaped label strings; rebuilt only when the seat set changes."""

    def __init__(self, site: str, seats: Sequence[str], teams: Mapping[str, SeatLabels]) -> None:
        self.seats = list(seats)
        self.members = frozenset(seats)
        self.position = {seat: i for i, seat in enumerate(self.seats)}
        team = [teams.get(seat, SeatLabels("default")).team for seat in self.seats]
        self.values = [(site, t, seat) for t, seat in zip(team, self.seats, strict=True)]
        self.labels = [
            label_string(zip(("site", "team", "seat"), v, strict=True)) for v in self.values
        ]


class FloorCollector:
    def __init__(
        self,
        site: str,
        seats: Mapping[str, SeatLabels],
        tallies: DailyTallies,
        live: Sequence[LiveSeconds],
        clock: Callable[[], float],
        *,
        outcomes: SeatOutcomes | None = None,
        states: SeatStates | None = None,
        quotas: QuotaProvider | None = None,
        seats_per_slice: int = SEATS_PER_SLICE,
    ) -> None:
        self._site = site
        self._seats = seats
        self._tallies = tallies
        self._live = live
        self._clock = clock
        self.outcomes = outcomes
        self.states = states
        self.quotas = quotas
        """Set by the quota engine when it exists; until then the quota families are empty."""
        self._families = _Families()
        self._index = _SeatIndex(site, sorted(seats), seats)
        self._scanned: dict[int, tuple[Collection[str], int]] = {}
        self._seats_per_slice = seats_per_slice

    def prepare(self, *, openmetrics: bool) -> Formatting:
        """Fast path: the per-seat columns read now; the text of every family formatted later.

        The columns are fresh lists and the label index is never changed once built, so the
        formatting may run in another thread while the loop goes on changing the live state.
        """
        return self._formatting(*_run(self._column_steps(self._clock())), openmetrics)

    async def prepare_async(self, *, openmetrics: bool) -> Formatting:
        """:meth:`prepare`, letting the event loop run between slices of seats.

        Quotas are worked out per seat (~5 µs each): a 5 000-seat floor read in one go would
        hold the loop for tens of milliseconds, and a call's compliance decision with it.
        """
        steps = self._column_steps(self._clock())
        while True:
            read = _step(steps)
            if read is not None:
                return self._formatting(*read, openmetrics)
            await asyncio.sleep(0)  # a turn of the loop between slices, nothing awaited

    def _formatting(
        self, index: _SeatIndex, columns: list[tuple[SeatFamily, list[Any]]], openmetrics: bool
    ) -> Formatting:
        def formatting() -> list[bytes]:
            return [
                piece
                for family, values in columns
                for piece in family.render(index.labels, values, openmetrics=openmetrics)
            ]

        return formatting

    def collect(self) -> Iterator[Metric]:
        """Stock path: the same samples as prometheus_client metric families."""
        index, columns = _run(self._column_steps(self._clock()))
        for family, values in columns:
            yield family.stock(index.values, values)

    def _live_seconds(self, now: float) -> Mapping[str, tuple[float, float]]:
        return merge_open_seconds([source(now) for source in self._live])

    def _index_for(self, *sources: Collection[str]) -> _SeatIndex:
        """The seat index, grown by seats the sources know and the index does not.

        A source mapping seen before with the same size cannot hold a new seat (they only grow:
        tallies within a day, the seat board) and is not scanned again — scanning 5 000 keys
        per source per scrape would cost more than rendering the quiet seats.
        """
        index = self._index
        fresh: set[str] = set()
        for position, source in enumerate(sources):
            seen = self._scanned.get(position)
            # Holding the source itself (not its id) rules out a new dict at a recycled address.
            if seen is not None and seen[0] is source and seen[1] == len(source):
                continue
            fresh.update(seat for seat in source if seat not in index.members)
            self._scanned[position] = (source, len(source))
        if fresh:
            self._index = index = _SeatIndex(self._site, sorted(index.members | fresh), self._seats)
        return index

    def _column_steps(self, now: float) -> _Steps:
        """Read every column, yielding after each slice of ``seats_per_slice`` seats."""
        day = self._tallies.local_day(now)
        today = self._tallies.days.get(day, {})
        live = self._live_seconds(now)
        states = self.states(now) if self.states is not None else {}
        quota_seats = self.quotas.quota_seats() if self.quotas is not None else ()
        outcomes = self.outcomes.day(day) if self.outcomes is not None else {}
        index = self._index_for(today, live, states, quota_seats)
        seats = index.seats
        talk: list[float] = []
        hold: list[float] = []
        counts: list[tuple[int, ...]] = []
        seat_outcomes: list[Any] = []
        status: list[SeatStatus] = []
        quota: list[Sequence[QuotaStatus]] = []
        step = self._seats_per_slice
        for start in range(0, len(seats), step):
            part = seats[start : start + step]
            # map() over dict.get: these passes over every seat are most of a quiet scrape's cost.
            tallies = list(map(today.get, part, repeat(_ZERO)))
            talk.extend(map(_TALK, tallies))
            hold.extend(map(_HOLD, tallies))
            counts.extend(map(_COUNTS, tallies))
            if self.outcomes is not None:
                seat_outcomes.extend(map(outcomes.get, part, repeat(())))
            if self.states is not None:
                status.extend(map(states.get, part, repeat(self.states.default)))
            if self.quotas is not None:
                found = self.quotas.seat_quotas(now, part)
                quota.extend(map(found.get, part, repeat(())))
            yield
        for seat, (open_talk, open_hold) in live.items():
            i = index.position[seat]
            talk[i] += open_talk
            hold[i] += open_hold
        f = self._families
        columns: list[tuple[SeatFamily, list[Any]]] = [
            (f.talk, talk),
            (f.hold, hold),
            (f.calls, counts),
            (f.answered, counts),
            (f.effective, counts),
            (f.faxes, counts),
        ]
        if self.outcomes is not None:
            columns.append((f.outcomes, seat_outcomes))
        if self.states is not None:
            columns.extend([(f.state, status), (f.state_since, status)])
        if self.quotas is not None:
            columns.extend([(f.quota_target, quota), (f.quota_ratio, quota), (f.quota_pace, quota)])
        return index, columns


_Columns = tuple[_SeatIndex, list[tuple[SeatFamily, list[Any]]]]
_Steps = Generator[None, None, _Columns]


def _step(steps: _Steps) -> _Columns | None:
    """One more slice of ``steps``; the columns once all are read."""
    try:
        next(steps)
    except StopIteration as done:
        return cast(_Columns, done.value)
    return None


def _run(steps: _Steps) -> _Columns:
    """The columns of ``steps`` read in one go."""
    while (read := _step(steps)) is None:
        pass
    return read
