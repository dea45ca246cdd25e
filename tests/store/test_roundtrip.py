"""Every capture's calls go through the writer and come back unchanged, exactly once."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ctid.replay import replay_streams
from ctid.store.queries import (
    completeness,
    load_calls,
    load_calls_by_id,
    rebuild_day,
    rebuild_days,
)
from ctid.store.rows import gap_row
from ctid.store.schema import calls
from ctid.store.upsert import write_rows
from ctid.store.writer import StoreWriter
from ctid.tracker.tallies import SeatTally
from tests.store.support import (
    FAST_BACKOFF,
    TEST_NUMBERS,
    call_facts,
    count,
    migrated,
    replay_through_writer,
    store_capture,
    writer_running,
)
from tests.truth import capture_names, capture_streams

DAY = dt.date(2026, 11, 23)
UTC = ZoneInfo("UTC")


@pytest.mark.asyncio
async def test_all_captures_through_the_writer_read_back_equal(db_url: str) -> None:
    with migrated(db_url) as engine:
        writer = StoreWriter(
            engine, numbers=TEST_NUMBERS, flush_ms=20, batch_rows=50, backoff=FAST_BACKOFF
        )
        async with writer_running(writer):
            replays = {n: await replay_through_writer(writer, n, n) for n in capture_names()}
        for name, replay in replays.items():
            ended = [c for c in replay.calls if c.ended_at is not None]
            with engine.connect() as connection:
                stored = load_calls_by_id(connection, name, [c.linkedid for c in ended])
                seats = dict(connection.execute(select(calls.c.linkedid, calls.c.seat)).all())
            assert sorted(map(call_facts, stored)) == sorted(map(call_facts, ended)), name
            assert all(seats[c.linkedid] == c.seat for c in ended), name
        assert (writer.dropped, writer.backlog) == (0, 0)
        assert count(engine, "calls") == sum(
            1 for r in replays.values() for c in r.calls if c.ended_at is not None
        )


def test_numbers_are_stored_masked_and_hashed_never_in_full(sqlite_url: str) -> None:
    with migrated(sqlite_url) as engine:
        store_capture(engine, "inbound_queue_answered", numbers=TEST_NUMBERS)
        with engine.connect() as connection:
            columns = (calls.c.remote_hash, calls.c.remote_masked, calls.c.remote_sealed)
            stored = connection.execute(select(*columns)).one()
    digest = TEST_NUMBERS.protector().hasher.digest("13800138000")
    assert tuple(stored) == (digest, "138******00", None)  # no encryption key: nothing sealed


def test_replaying_a_capture_twice_stores_each_call_once(db_url: str) -> None:
    with migrated(db_url) as engine:
        first = store_capture(engine, "mixed_busy_period", "pbx")
        tables = {t: count(engine, t) for t in ("calls", "call_segments", "cdrs", "internal_talk")}
        store_capture(engine, "mixed_busy_period", "pbx")
        assert {t: count(engine, t) for t in tables} == tables
        assert tables["calls"] == len([c for c in first.calls if c.ended_at is not None])
        assert tables["cdrs"] == 163


def test_rebuilt_tallies_equal_the_live_ones(db_url: str) -> None:
    """All captures in one store (one PBX each): per seat, every counter of the day."""
    live: dict[str, SeatTally] = {}
    with migrated(db_url) as engine:
        for name in capture_names():
            replay = store_capture(engine, name)
            assert replay.tallies is not None
            for seat, tally in replay.tallies.totals().items():
                live.setdefault(seat, SeatTally()).add(tally)
        rebuilt = rebuild_day(engine, DAY, UTC)
    assert_tallies_equal(rebuilt, live)


def test_an_instance_restores_only_its_own_pbxs(sqlite_url: str) -> None:
    """Instances sharing a database: each one's restart counts its own PBXs' calls only."""
    with migrated(sqlite_url) as engine:
        ours = store_capture(engine, "hold_mid_call", pbx="pbx-a")
        store_capture(engine, "answered_customer_hangup", pbx="pbx-b")
        mine = rebuild_day(engine, DAY, UTC, pbxs=["pbx-a"])
        everyone = rebuild_day(engine, DAY, UTC)
    assert ours.tallies is not None
    assert_tallies_equal(mine, ours.tallies.totals())
    assert everyone["1001"].calls == 2
    assert mine["1001"].calls == 1


def test_rebuild_splits_a_call_at_local_midnight_like_the_daemon(sqlite_url: str) -> None:
    # The mixed capture runs 10:50-11:00 UTC: at UTC+13 local midnight cuts through it.
    tz = ZoneInfo("Etc/GMT-13")
    replay = replay_streams(capture_streams("mixed_busy_period"), tz=tz)
    assert replay.tallies is not None
    assert len(replay.tallies.days) == 2, "the capture must straddle local midnight"
    with migrated(sqlite_url) as engine:
        store_capture(engine, "mixed_busy_period", "pbx")
        for day, live in replay.tallies.days.items():
            assert_tallies_equal(rebuild_day(engine, day, tz), live)
        both = rebuild_days(engine, min(replay.tallies.days), max(replay.tallies.days), tz)
    assert_tallies_equal(both, replay.tallies.totals())


def test_calls_are_found_by_the_day_they_overlap(sqlite_url: str) -> None:
    with migrated(sqlite_url) as engine:
        replay = store_capture(engine, "mixed_busy_period", "pbx")
        start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
        with engine.connect() as connection:
            today = load_calls(connection, start, start + dt.timedelta(days=1))
            tomorrow = load_calls(
                connection, start + dt.timedelta(days=1), start + dt.timedelta(days=2)
            )
    assert len(today) == len([c for c in replay.calls if c.ended_at is not None])
    assert tomorrow == []


def assert_tallies_equal(got: dict[str, SeatTally], want: dict[str, SeatTally]) -> None:
    assert sorted(s for s, t in got.items() if t.as_dict() != SeatTally().as_dict()) == sorted(
        s for s, t in want.items() if t.as_dict() != SeatTally().as_dict()
    )
    for seat, tally in want.items():
        assert got.get(seat, SeatTally()).as_dict() == pytest.approx(tally.as_dict(), abs=1e-6), (
            seat
        )


def test_completeness_is_the_share_of_the_day_the_ami_link_was_up(sqlite_url: str) -> None:
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    noon = (start + dt.timedelta(hours=12)).timestamp()
    with migrated(sqlite_url) as engine:
        store_capture(engine, "pbx_crash_mid_call", "pbx1")  # one gap: PBX killed, back 7.5 s on
        store_capture(engine, "answered_customer_hangup", "pbx2")  # no gap
        write_rows(
            engine,
            [
                gap_row("pbx3", noon, noon + 600),
                gap_row("pbx3", noon + 300, noon + 900),  # overlaps: counted once
                gap_row("pbx4", end.timestamp() - 3600, None),  # still disconnected
            ],
        )
        with engine.connect() as connection:
            shares = completeness(connection, start, end)
    assert shares == pytest.approx(
        {
            "pbx1": 1 - (1795430377.472818 - 1795430369.930944) / 86400,
            "pbx2": 1.0,
            "pbx3": 1 - 900 / 86400,
            "pbx4": 1 - 3600 / 86400,
        }
    )
