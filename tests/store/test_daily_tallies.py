"""Closing a day: the stored per-seat tallies equal the tracker's, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Iterable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, update

from ctid.cli import main
from ctid.store.closing import ClosedSeat, DayCloser, close_time, load_closed_day
from ctid.store.migrate import alembic_config, current_revision
from ctid.store.purge import Cutoff, purge
from ctid.store.rows import StoreRow
from ctid.store.runtime import open_store
from ctid.store.schema import daily_tallies
from ctid.store.settings import StoreSettings
from ctid.store.upsert import write_rows
from ctid.tracker.tallies import DailyTallies, SeatTally
from tests.store.support import (
    TEST_NUMBERS,
    count,
    migrated,
    store_capture,
    wait_for,
    writer_running,
)

UTC = ZoneInfo("UTC")
CAPTURE = "mixed_busy_period"
DELAY_S = 600.0


def assert_same_tallies(stored: dict[str, ClosedSeat], expected: dict[str, SeatTally]) -> None:
    assert set(stored) == set(expected)
    for seat, tally in expected.items():
        got = stored[seat].tally
        for name, value in tally.as_dict().items():
            if isinstance(value, float):
                assert getattr(got, name) == pytest.approx(value, abs=0.001), (seat, name)
            else:
                assert getattr(got, name) == value, (seat, name)


def writing_to(engine: Engine) -> DayCloser:
    """A closer whose rows are written at once (what the writer does, minus the waiting)."""

    def put(rows: Iterable[StoreRow]) -> None:
        write_rows(engine, list(rows))

    return DayCloser(engine, put, DailyTallies(UTC), DELAY_S, None)


def replayed(engine: Engine) -> tuple[DailyTallies, dt.date]:
    """The capture stored; the tracker's tallies and the (only) day it covers."""
    tallies = store_capture(engine, CAPTURE).tallies
    assert tallies is not None
    assert len(tallies.days) == 1
    return tallies, next(iter(tallies.days))


@pytest.mark.asyncio
async def test_a_closed_day_holds_the_trackers_tallies_for_every_seat(db_url: str) -> None:
    with migrated(db_url) as engine:
        tallies, day = replayed(engine)
        closer = DayCloser(engine, writing_to(engine).put, tallies, DELAY_S, live_from=day)
        await closer.close(day)
        stored = load_closed_day(engine, day)
    assert len(stored) > 3
    assert {s.source for s in stored.values()} == {"daemon"}
    assert_same_tallies(stored, tallies.days[day])


@pytest.mark.asyncio
async def test_closing_a_day_twice_gives_the_same_rows(db_url: str) -> None:
    with migrated(db_url) as engine:
        tallies, day = replayed(engine)
        closer = DayCloser(engine, writing_to(engine).put, tallies, DELAY_S, live_from=day)
        await closer.close(day)
        first = load_closed_day(engine, day)
        await closer.close(day)
        second = load_closed_day(engine, day)
        assert count(engine, "daily_tallies") == len(first)
    assert {seat: s.tally for seat, s in second.items()} == {
        seat: s.tally for seat, s in first.items()
    }


@pytest.mark.asyncio
async def test_the_daemon_closes_a_day_from_its_live_tallies_once_it_has_settled(
    db_url: str,
) -> None:
    with migrated(db_url) as engine:
        tallies, day = replayed(engine)
        # The wall clock 0.3 s before the day's close time.
        offset = close_time(day, UTC, DELAY_S) - time.time() - 0.3
        closer = DayCloser(
            engine,
            writing_to(engine).put,
            tallies,
            DELAY_S,
            live_from=day,
            clock=lambda: time.time() + offset,
        )
        task = asyncio.create_task(closer.run())
        try:
            await asyncio.sleep(0.1)
            assert count(engine, "daily_tallies") == 0  # not settled yet
            await wait_for(lambda: count(engine, "daily_tallies") > 0, within=5)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stored = load_closed_day(engine, day)
    assert {s.source for s in stored.values()} == {"daemon"}
    assert_same_tallies(stored, tallies.days[day])


@pytest.mark.asyncio
async def test_a_start_after_a_missed_close_rebuilds_the_day_as_the_daemon_closed_it(
    db_url: str, tmp_path: Path
) -> None:
    with migrated(db_url) as engine:
        tallies, day = replayed(engine)
        await DayCloser(engine, writing_to(engine).put, tallies, DELAY_S, day).close(day)
        closed_by_daemon = load_closed_day(engine, day)
        with engine.begin() as connection:
            connection.execute(daily_tallies.delete())  # the daemon was down at that time

        # A start the next day, after the close time: today's tallies are restored, the
        # missed day is rebuilt from the stored calls and handed to the writer.
        at_start = close_time(day, UTC, DELAY_S) + 60
        settings = StoreSettings(data_dir=tmp_path, flush_ms=20)
        live = DailyTallies(UTC)
        async with open_store(
            settings, live, url=db_url, now=lambda: at_start, numbers=TEST_NUMBERS
        ) as store:
            assert store.restored_day == day + dt.timedelta(days=1)
            async with writer_running(store.writer):
                closer = DayCloser(
                    store.engine,
                    store.writer.put,
                    live,
                    DELAY_S,
                    store.restored_day,
                    clock=lambda: at_start,
                )
                task = asyncio.create_task(closer.run())
                try:
                    expected = len(closed_by_daemon)
                    await wait_for(lambda: count(engine, "daily_tallies") == expected)
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        rebuilt = load_closed_day(engine, day)
    assert {s.source for s in rebuilt.values()} == {"rebuild"}
    assert_same_tallies(rebuilt, {seat: s.tally for seat, s in closed_by_daemon.items()})


@pytest.mark.asyncio
async def test_check_passes_an_untouched_day_and_finds_a_tampered_row(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with migrated(db_url) as engine:
        tallies, day = replayed(engine)
        await DayCloser(engine, writing_to(engine).put, tallies, DELAY_S, day).close(day)
        seat = max(tallies.days[day], key=lambda s: tallies.days[day][s].talk_seconds)
        command = ["db", "tallies", "--db", db_url, "--date", day.isoformat()]

        assert main([*command, "--check"]) == 0
        assert "match" in capsys.readouterr().out

        with engine.begin() as connection:
            where = (daily_tallies.c.seat == seat) & (daily_tallies.c.day == day)
            tampered = daily_tallies.c.talk_seconds + 5
            connection.execute(update(daily_tallies).where(where).values(talk_seconds=tampered))
        assert main([*command, "--check"]) == 1
        out = capsys.readouterr().out
        assert f"{seat}: talk_seconds stored" in out
        assert len([line for line in out.splitlines() if line.startswith("  ")]) == 1

        assert main(command) == 0
        shown = capsys.readouterr().out
        assert seat in shown
        assert "daemon" in shown


def test_a_day_that_was_not_closed_is_one_line(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with migrated(sqlite_url) as engine:
        _, day = replayed(engine)
    assert main(["db", "tallies", "--db", sqlite_url, "--date", day.isoformat(), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "not closed" in err


def test_rebuild_stores_a_past_day_from_its_calls(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with migrated(sqlite_url) as engine:
        tallies, day = replayed(engine)
        past = day - dt.timedelta(days=1)
        # Today's day cannot be closed; an earlier day can (this capture has nothing on it).
        args = ["db", "tallies", "--db", sqlite_url]
        if day >= dt.datetime.now(UTC).date():
            assert main([*args, "--date", day.isoformat(), "--rebuild"]) == 2
            assert "not over" in capsys.readouterr().err
        else:
            assert main([*args, "--date", day.isoformat(), "--rebuild"]) == 0
            stored = load_closed_day(engine, day)
            assert {s.source for s in stored.values()} == {"rebuild"}
            assert_same_tallies(stored, tallies.days[day])
        assert main([*args, "--date", past.isoformat(), "--rebuild"]) == 0
        assert load_closed_day(engine, past) == {}


@pytest.mark.asyncio
async def test_purge_removes_a_closed_days_tallies_with_the_day(db_url: str) -> None:
    with migrated(db_url) as engine:
        tallies, day = replayed(engine)
        await DayCloser(engine, writing_to(engine).put, tallies, DELAY_S, day).close(day)
        seats = len(tallies.days[day])

        kept = purge(engine, Cutoff.of(day, UTC))
        assert kept["daily_tallies"] == 0
        assert count(engine, "daily_tallies") == seats

        gone = purge(engine, Cutoff.of(day + dt.timedelta(days=1), UTC))
        assert gone["daily_tallies"] == seats
        assert count(engine, "daily_tallies") == 0
        assert count(engine, "calls") == 0


NEW_TABLES = {"sites", "teams", "daily_tallies"}


def test_migration_0006_adds_and_drops_sites_teams_and_daily_tallies(db_url: str) -> None:
    with migrated(db_url) as engine:
        store_capture(engine, CAPTURE)
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0005")
        assert current_revision(engine) == "0005"
        assert not NEW_TABLES & set(inspect(engine).get_table_names())
        assert count(engine, "calls") > 0
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        assert current_revision(engine) == "0006"
        assert set(inspect(engine).get_table_names()) >= NEW_TABLES
