"""The store as the daemon uses it: open_store, the sinks, a restart mid-day."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from ctid.replay import replay_streams
from ctid.store.capture import cdr_events
from ctid.store.directory import SeatInfo, load_seats
from ctid.store.engine import make_engine
from ctid.store.runtime import Store, open_store
from ctid.store.settings import StoreSettings
from ctid.tracker.tallies import DailyTallies
from tests.store.support import TcpProxy, count, wait_for
from tests.truth import capture_streams

UTC = ZoneInfo("UTC")
NOON = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC).timestamp()
DAY = dt.date(2026, 11, 23)


def settings(tmp_path: Path) -> StoreSettings:
    return StoreSettings(data_dir=tmp_path / "var", flush_ms=10)


async def run_capture(store: Store, name: str) -> DailyTallies:
    """Feed a capture the daemon's way: effects to the writer, Cdr events to the CDR sink."""
    streams = capture_streams(name)
    result = replay_streams(streams, pbx="pbx1", sinks=[store.writer])
    sink = store.cdr_sink("pbx1")
    for data in streams:
        for cdr in cdr_events(data):
            sink(cdr)
    await wait_for(lambda: store.writer.backlog == 0)
    assert result.tallies is not None
    return result.tallies


@pytest.mark.asyncio
async def test_a_restart_mid_day_restores_todays_tallies_without_double_counting(
    tmp_path: Path,
) -> None:
    live = DailyTallies(UTC)
    async with open_store(settings(tmp_path), live, now=lambda: NOON) as store:
        task = asyncio.create_task(store.writer.run())
        replayed = await run_capture(store, "mixed_busy_period")
        await store.writer.close()
        await task
    for _ in range(2):  # restart twice: the same day comes back, not twice the day
        restarted = DailyTallies(UTC)
        async with open_store(settings(tmp_path), restarted, now=lambda: NOON):
            pass
        assert set(restarted.days) == {DAY}
        for seat, tally in replayed.totals().items():
            got = restarted.days[DAY][seat].as_dict()
            assert got == pytest.approx(tally.as_dict(), abs=1e-6)


@pytest.mark.asyncio
async def test_the_directory_and_cdrs_reach_the_store(tmp_path: Path) -> None:
    seats = [SeatInfo("1002", "李娜", "north")]
    async with open_store(
        settings(tmp_path), DailyTallies(UTC), seats=seats, pbxs=["pbx1"], now=lambda: NOON
    ) as store:
        task = asyncio.create_task(store.writer.run())
        await run_capture(store, "inbound_queue_answered")
        await store.writer.close()
        await task
        assert count(store.engine, "cdrs") == 5
        assert count(store.engine, "calls") == 1
        assert load_seats(store.engine) == {"1002": SeatInfo("1002", "李娜", "north")}


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_a_database_down_at_start_does_not_stop_the_daemon(
    pg_url: str, tmp_path: Path
) -> None:
    proxy = TcpProxy(pg_url)
    url = proxy.url
    tallies = DailyTallies(UTC)
    try:
        with capture_logs() as logs:
            async with open_store(settings(tmp_path), tallies, url=url, now=lambda: NOON) as store:
                task = asyncio.create_task(store.writer.run())
                streams = capture_streams("hold_mid_call")
                replay_streams(streams, pbx="pbx1", sinks=[store.writer])
                await wait_for(lambda: store.writer.last_error is not None)
                await proxy.up()  # the writer migrates the empty database, then writes
                await wait_for(lambda: store.writer.backlog == 0)
                await store.writer.close()
                await task
        assert "store_unavailable_at_start" in [entry["event"] for entry in logs]
        direct = make_engine(pg_url)
        try:
            assert count(direct, "calls") == 1
        finally:
            direct.dispose()
    finally:
        await proxy.down()
