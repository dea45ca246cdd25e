"""/metrics for a 5 000-seat floor: ctid's exposition against prometheus_client's generate_latest.

``python -m bench.metrics_render [--seats 5000] [--scrapes 20] [--quotas] [--slice N]``

Also serves the same floor the way the daemon does (``Exposition.render_async``: values read on
the event loop, text formatted in a worker thread) while a task measures the longest the loop
went without running it: what a scrape costs the event loop, as opposed to the scrape itself.

The floor is synthetic but shaped like a busy afternoon: every seat has tallies, 40 % are on a
call (their talk seconds move between scrapes), the rest idle, wrapping up, paused or offline.
The clock advances 15 s per scrape, as with a 15 s scrape interval.  Prints the median render
time of each path and their ratio; compare the ratio, not absolute figures across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, generate_latest

from ctid.interpreter import favour_the_event_loop
from ctid.live.seat_state import SeatState, SeatStatus
from ctid.metrics.calls import CallMetrics
from ctid.metrics.exposition import Exposition
from ctid.metrics.floor import SEATS_PER_SLICE, FloorCollector, SeatLabels
from ctid.metrics.quota import QuotaStatus
from ctid.metrics.seat_outcomes import SeatOutcomes
from ctid.policy import Policy, QuotaEngine
from ctid.policy.provider import EngineQuotaProvider
from ctid.policy.tiers import SeatProfile
from ctid.tracker.tallies import DailyTallies, SeatTally

TZ = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2026, 11, 23, 15, 0, tzinfo=TZ).timestamp()
POLICY = Policy.model_validate(
    {
        "version": "bench",
        "sites": {"floor": {"timezone": TZ.key}},
        "tiers": [{"name": "standard", "quotas": {"talk_minutes": 240, "effective_calls": 40}}],
    }
)
_QUIET = (SeatState.IDLE, SeatState.WRAP_UP, SeatState.PAUSED, SeatState.OFFLINE)


class SyntheticFloor:
    """A floor of ``seats`` seats with deterministic pseudo-random activity."""

    def __init__(
        self,
        seats: int,
        *,
        quotas: bool = False,
        seed: int = 7,
        seats_per_slice: int = SEATS_PER_SLICE,
    ) -> None:
        rng = random.Random(seed)
        self.seats_per_slice = seats_per_slice
        self.now = START
        self.ids = [f"{10000 + i}" for i in range(seats)]
        self.labels = {seat: SeatLabels(f"team{i % 40:02d}") for i, seat in enumerate(self.ids)}
        self.tallies = DailyTallies(TZ)
        day = self.tallies.local_day(START)
        outcomes = SeatOutcomes(self.tallies.local_day)
        for seat in self.ids:
            out = rng.randint(0, 120)
            self.tallies.days.setdefault(day, {})[seat] = SeatTally(
                calls=out + 5,
                outbound=out,
                inbound=5,
                answered=out // 3 + 5,
                effective=out // 4,
                talk_seconds=rng.uniform(0, 12_000),
                hold_seconds=rng.uniform(0, 600),
                faxes=rng.randint(0, 1),
            )
            outcomes._days.setdefault(day, {})[seat] = (  # a bench fixture: reach in
                ("answered", float(out // 3)),
                ("busy", float(out // 10)),
                ("no_answer", float(out - out // 3 - out // 10)),
            )
        self.outcomes = outcomes
        self.talking = {seat: rng.uniform(0, 300) for seat in self.ids if rng.random() < 0.4}
        self.states = {
            seat: SeatStatus(
                SeatState.TALKING if seat in self.talking else rng.choice(_QUIET),
                START - rng.uniform(0, 600),
            )
            for seat in self.ids
        }
        self.quotas = _quota_engine(self.ids, day, rng) if quotas else None

    # the floor collector's inputs --------------------------------------------------
    def clock(self) -> float:
        return self.now

    def live(self, now: float) -> Mapping[str, tuple[float, float]]:
        elapsed = now - START
        return {seat: (base + elapsed, 0.0) for seat, base in self.talking.items()}

    @property
    def default(self) -> SeatStatus:
        return SeatStatus(SeatState.IDLE, START)

    def __call__(self, now: float) -> Mapping[str, SeatStatus]:
        return self.states

    def quota_seats(self) -> Collection[str]:
        return () if self.quotas is None else self.quotas.quota_seats()

    def seat_quotas(self, now: float, seats: Iterable[str]) -> Mapping[str, Sequence[QuotaStatus]]:
        return {} if self.quotas is None else self.quotas.seat_quotas(now, seats)

    def collector(self) -> FloorCollector:
        return FloorCollector(
            "bench",
            self.labels,
            self.tallies,
            [self.live],
            self.clock,
            outcomes=self.outcomes,
            states=self,
            quotas=self if self.quotas is not None else None,
            seats_per_slice=self.seats_per_slice,
        )


def _quota_engine(seats: Sequence[str], day: dt.date, rng: random.Random) -> EngineQuotaProvider:
    """The daemon's quota engine for every seat (two quotas each), its counters part-way."""
    profiles = {seat: SeatProfile(seat, seat, "default", "floor") for seat in seats}
    engine = QuotaEngine(POLICY, profiles, start=dt.datetime.fromtimestamp(START, TZ))
    for seat in seats:  # a bench fixture: reach in rather than replay 5 000 seats' calls
        engine._counters[(seat, day)] = {
            "talk_minutes": rng.uniform(0, 240),
            "effective_calls": float(rng.randint(0, 40)),
        }
    return EngineQuotaProvider(engine)


def registries(floor: SyntheticFloor) -> tuple[Exposition, CollectorRegistry]:
    """(ctid's exposition, a stock registry holding the same families) for one floor."""
    small = CollectorRegistry()
    calls = CallMetrics(None, "bench", {seat: labels.team for seat, labels in floor.labels.items()})
    stock = CollectorRegistry()
    stock.register(floor.collector())
    CallMetrics(stock, "bench", {seat: labels.team for seat, labels in floor.labels.items()})
    return Exposition(small, [floor.collector(), calls]), stock


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def _served(floor: SyntheticFloor, scrapes: int) -> tuple[list[float], list[float]]:
    """(render_async times, longest loop stall during each) in seconds."""
    fast, _ = registries(floor)
    totals: list[float] = []
    stalls: list[float] = []
    for scrape in range(scrapes):
        floor.now = START + 15 * scrape
        stop = asyncio.Event()
        task = asyncio.create_task(_longest_stall(stop))
        await asyncio.sleep(0)
        began = time.perf_counter()
        await fast.render_async("application/openmetrics-text; version=1.0.0")
        totals.append(time.perf_counter() - began)
        stop.set()
        stalls.append(await task)
    return totals, stalls


async def _longest_stall(stop: asyncio.Event) -> float:
    """The longest the loop took to come back to this task, until ``stop`` is set."""
    longest, last = 0.0, time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    return longest


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seats", type=int, default=5000)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument(
        "--quotas", action="store_true", help="also two quotas per seat, from the quota engine"
    )
    parser.add_argument(
        "--slice",
        type=int,
        default=SEATS_PER_SLICE,
        help="seats read between turns of the loop (default %(default)s; 1000000: all at once)",
    )
    args = parser.parse_args(argv)
    floor = SyntheticFloor(args.seats, quotas=args.quotas, seats_per_slice=args.slice)
    fast, stock = registries(floor)
    fast_times: list[float] = []
    stock_times: list[float] = []
    size = 0
    for scrape in range(args.scrapes):
        floor.now = START + 15 * scrape
        began = time.perf_counter()
        body, _ = fast.render("application/openmetrics-text; version=1.0.0")
        fast_times.append(time.perf_counter() - began)
        size = len(body)
        began = time.perf_counter()
        generate_latest(stock)
        stock_times.append(time.perf_counter() - began)
    first = fast_times[0] * 1000
    fast_ms, stock_ms = _median_ms(fast_times[1:] or fast_times), _median_ms(stock_times)
    print(f"seats: {args.seats}  quotas: {args.quotas}  body: {size / 1e6:.1f} MB")
    print(f"ctid exposition:  {fast_ms:7.1f} ms median ({first:.1f} ms first, cold cache)")
    print(f"generate_latest:  {stock_ms:7.1f} ms median")
    print(f"ratio: {stock_ms / fast_ms:.1f}x faster")
    served = SyntheticFloor(args.seats, quotas=args.quotas, seats_per_slice=args.slice)
    favour_the_event_loop()  # served as `ctid run` serves it
    totals, stalls = asyncio.run(_served(served, args.scrapes))
    total_ms, stall_ms = _median_ms(totals[1:] or totals), _median_ms(stalls[1:] or stalls)
    print(f"served (render_async): {total_ms:7.1f} ms median, loop held {stall_ms:.1f} ms at most")


if __name__ == "__main__":
    main()
