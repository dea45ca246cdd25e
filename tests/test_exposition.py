"""The fast /metrics renderer: same samples as prometheus_client, both formats, cache safety."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest

from bench.metrics_render import START, SyntheticFloor, registries
from ctid.metrics.exposition import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    Exposition,
    wants_openmetrics,
)
from ctid.metrics.floor import SEATS_PER_SLICE, FloorCollector, SeatLabels
from ctid.tracker.tallies import DailyTallies, SeatTally
from tests.exposition_helpers import Key, parse_openmetrics, parse_text

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize("quotas", [False, True])
def test_fast_text_has_exactly_the_stock_samples_scrape_after_scrape(quotas: bool) -> None:
    floor = SyntheticFloor(300, quotas=quotas)
    fast, stock = registries(floor)
    for scrape in range(4):
        floor.now = START + 15 * scrape
        body, content_type = fast.render("text/plain")
        assert content_type == CONTENT_TYPE_TEXT
        expected = parse_text(generate_latest(stock))
        assert parse_text(body) == expected
        # Every seat has exactly one state, and the quota families appear only with a provider.
        states = [name for name, _ in expected if name == "ctid_seat_state"]
        assert len(states) == 300
        assert any(name == "ctid_seat_quota_target" for name, _ in expected) is quotas


@pytest.mark.parametrize("quotas", [False, True])
def test_fast_openmetrics_has_exactly_the_stock_samples(quotas: bool) -> None:
    floor = SyntheticFloor(200, quotas=quotas)
    fast, stock = registries(floor)
    for scrape in range(3):
        floor.now = START + 15 * scrape
        body, content_type = fast.render(PROMETHEUS_ACCEPT)
        assert content_type == CONTENT_TYPE_OPENMETRICS
        assert body.endswith(b"# EOF\n")
        assert body.count(b"# EOF") == 1
        stock_body = om_generate_latest(stock)  # type: ignore[no-untyped-call]
        assert parse_openmetrics(body) == parse_openmetrics(stock_body)


def test_talk_seconds_of_a_seat_on_a_call_move_between_scrapes() -> None:
    floor = SyntheticFloor(150)
    fast, _ = registries(floor)
    seat = next(iter(floor.talking))
    key: Key = (
        "ctid_seat_talk_seconds_today",
        (("seat", seat), ("site", "bench"), ("team", floor.labels[seat].team)),
    )
    first = parse_text(fast.render("")[0])[key]
    floor.now += 15
    second = parse_text(fast.render("")[0])[key]
    assert second == pytest.approx(first + 15, abs=0.002)


def _tiny_floor(tallies: DailyTallies, seats: dict[str, SeatLabels]) -> Exposition:
    now = dt.datetime(2026, 11, 23, 12, tzinfo=tallies.tz).timestamp()
    collector = FloorCollector("s", seats, tallies, [], lambda: now)
    return Exposition(CollectorRegistry(), [collector])


def test_a_seat_first_seen_in_the_tallies_appears_and_counts_update() -> None:
    tallies = DailyTallies(dt.UTC)  # type: ignore[arg-type]
    day = dt.date(2026, 11, 23)
    exposition = _tiny_floor(tallies, {"1001": SeatLabels("red")})
    before = parse_text(exposition.render("")[0])
    assert {labels for name, labels in before if name == "ctid_seat_answered_calls_today"} == {
        (("seat", "1001"), ("site", "s"), ("team", "red"))
    }
    tallies.days[day] = {"1001": SeatTally(answered=2), "1777": SeatTally(answered=5)}
    after = parse_text(exposition.render("")[0])
    answered = {
        dict(labels)["seat"]: value
        for (name, labels), value in after.items()
        if name == "ctid_seat_answered_calls_today"
    }
    assert answered == {"1001": 2, "1777": 5}
    tallies.days[day]["1001"].answered = 3
    again = parse_text(exposition.render("")[0])
    assert (
        again[
            ("ctid_seat_answered_calls_today", (("seat", "1001"), ("site", "s"), ("team", "red")))
        ]
        == 3
    )


def test_awkward_label_values_survive_escaping_in_both_formats() -> None:
    tallies = DailyTallies(dt.UTC)  # type: ignore[arg-type]
    team = 'Sales "A"\\north\nline 张'
    exposition = _tiny_floor(tallies, {'se"at\\1': SeatLabels(team)})
    for accept, parse in (("text/plain", parse_text), (PROMETHEUS_ACCEPT, parse_openmetrics)):
        samples = parse(exposition.render(accept)[0])
        labels = dict(next(labels for name, labels in samples if name.startswith("ctid_seat_")))
        assert labels == {"site": "s", "team": team, "seat": 'se"at\\1'}


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text", True),
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", True),
        ("application/openmetrics-text;version=0.0.1,text/plain;version=0.0.4", False),
        ("text/plain;version=0.0.4,application/openmetrics-text", False),
        ("", False),
        ("*/*", False),
    ],
)
def test_openmetrics_is_chosen_only_when_asked_for_first(accept: str, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


def test_counters_get_total_only_on_samples_in_openmetrics() -> None:
    floor = SyntheticFloor(3)
    fast, _ = registries(floor)
    om = fast.render(PROMETHEUS_ACCEPT)[0].decode()
    text = fast.render("")[0].decode()
    assert "# TYPE ctid_talk_seconds counter" in om
    assert "# TYPE ctid_talk_seconds_total counter" in text
    assert "# EOF" not in text


def test_a_seat_only_on_a_live_call_appears_even_in_a_same_sized_new_mapping() -> None:
    tallies = DailyTallies(dt.UTC)  # type: ignore[arg-type]
    now = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC).timestamp()
    on_call = ["2001"]
    collector = FloorCollector(
        "s", {}, tallies, [lambda _now: {on_call[0]: (5.0, 0.0)}], lambda: now
    )
    exposition = Exposition(CollectorRegistry(), [collector])

    def talking() -> dict[str, float]:
        return {
            dict(labels)["seat"]: value
            for (name, labels), value in parse_text(exposition.render("")[0]).items()
            if name == "ctid_seat_talk_seconds_today"
        }

    assert talking() == {"2001": 5.0}
    on_call[0] = "2002"  # a fresh dict of the same size, another seat
    assert talking() == {"2001": 0.0, "2002": 5.0}


@pytest.mark.asyncio
async def test_render_async_gives_what_render_gives() -> None:
    floor_a, floor_b = SyntheticFloor(200, quotas=True), SyntheticFloor(200, quotas=True)
    (fast_a, _), (fast_b, _) = registries(floor_a), registries(floor_b)
    for scrape in range(3):
        floor_a.now = floor_b.now = START + 15 * scrape
        body_async, type_async = await fast_a.render_async(PROMETHEUS_ACCEPT)
        body, content_type = fast_b.render(PROMETHEUS_ACCEPT)
        assert type_async == content_type == CONTENT_TYPE_OPENMETRICS
        assert parse_openmetrics(body_async) == parse_openmetrics(body)


@pytest.mark.asyncio
async def test_render_async_lets_the_loop_run_between_slices_of_seats() -> None:
    # The quotas of 1,200 seats are read in three slices: a task waiting to run (a compliance
    # decision, say) gets its turn in between, not after the whole floor.
    collector = SyntheticFloor(1_200, quotas=True).collector()
    turns = 0
    reading = asyncio.create_task(collector.prepare_async(openmetrics=False))

    async def other_work() -> None:
        nonlocal turns
        while not reading.done():
            turns += 1
            await asyncio.sleep(0)

    await asyncio.gather(reading, other_work())
    assert turns == -(-1_200 // SEATS_PER_SLICE)  # a turn per slice
    assert b"".join(reading.result()()) == b"".join(collector.prepare(openmetrics=False)())


class _ThreadNoting:
    """A fast source that notes where its values were read and where they were formatted."""

    def __init__(self) -> None:
        self.read_in: list[int] = []
        self.formatted_in: list[int] = []

    def prepare(self, *, openmetrics: bool) -> Callable[[], list[bytes]]:
        self.read_in.append(threading.get_ident())

        def formatting() -> list[bytes]:
            self.formatted_in.append(threading.get_ident())
            return [b"# TYPE ctid_noted gauge\nctid_noted 1\n"]

        return formatting

    async def prepare_async(self, *, openmetrics: bool) -> Callable[[], list[bytes]]:
        return self.prepare(openmetrics=openmetrics)


@pytest.mark.asyncio
async def test_render_async_reads_on_the_loop_and_formats_in_a_worker_thread() -> None:
    source = _ThreadNoting()
    body, _ = await Exposition(CollectorRegistry(), [source]).render_async("text/plain")
    loop_thread = threading.get_ident()
    assert source.read_in == [loop_thread]
    assert len(source.formatted_in) == 1
    assert source.formatted_in[0] != loop_thread
    assert b"ctid_noted 1\n" in body
