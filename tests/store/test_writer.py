"""The batching writer: nothing lost while the database is down, up to its bounds."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ctid.replay import replay_streams
from ctid.store.engine import make_engine
from ctid.store.metrics import StoreCollector
from ctid.store.migrate import upgrade, upgrade_engine
from ctid.store.queries import load_calls_by_id
from ctid.store.rows import StoreRow, call_rows
from ctid.store.spool import Spool
from ctid.store.writer import StoreWriter
from ctid.tracker.model import Call
from tests.store.support import (
    FAST_BACKOFF,
    TEST_NUMBERS,
    TcpProxy,
    count,
    migrated,
    wait_for,
    writer_running,
)
from tests.truth import capture_streams


@pytest.fixture(scope="module")
def mixed_calls() -> list[Call]:
    replay = replay_streams(capture_streams("mixed_busy_period"))
    return [c for c in replay.calls if c.ended_at is not None]


def units(calls: list[Call]) -> list[list[StoreRow]]:
    return [call_rows(call) for call in calls]


def rows_in(batch: list[list[StoreRow]]) -> int:
    return sum(len(unit) for unit in batch)


@pytest.mark.asyncio
async def test_a_full_batch_is_written_without_waiting_for_the_timer(
    sqlite_url: str, mixed_calls: list[Call]
) -> None:
    with migrated(sqlite_url) as engine:
        writer = StoreWriter(engine, numbers=TEST_NUMBERS, flush_ms=60_000, batch_rows=5)
        async with writer_running(writer):
            for unit in units(mixed_calls[:10]):
                writer.put(unit)
            await wait_for(lambda: count(engine, "calls") == 10, within=5)


@pytest.mark.asyncio
async def test_a_lone_row_is_written_within_flush_ms(
    sqlite_url: str, mixed_calls: list[Call]
) -> None:
    with migrated(sqlite_url) as engine:
        writer = StoreWriter(engine, numbers=TEST_NUMBERS, flush_ms=50, batch_rows=1000)
        async with writer_running(writer):
            writer.put(call_rows(mixed_calls[0]))
            await wait_for(lambda: count(engine, "calls") == 1, within=2)


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_postgres_down_keeps_rows_and_writes_them_when_back(
    pg_url: str, mixed_calls: list[Call]
) -> None:
    upgrade(pg_url)
    proxy = TcpProxy(pg_url)
    proxied = proxy.url
    engine, direct = make_engine(proxied), make_engine(pg_url)
    try:
        writer = StoreWriter(
            engine, numbers=TEST_NUMBERS, flush_ms=10, batch_rows=20, backoff=FAST_BACKOFF
        )
        batch = units(mixed_calls)
        async with writer_running(writer):
            for unit in batch[:40]:
                writer.put(unit)
            await wait_for(lambda: writer.last_error is not None)
            assert "OperationalError" in (writer.last_error or "")
            assert not writer.healthy
            assert writer.backlog == rows_in(batch[:40])
            await proxy.up()
            await wait_for(lambda: writer.backlog == 0)
            assert writer.healthy
            await proxy.down()  # an outage after connections were pooled
            for unit in batch[40:]:
                writer.put(unit)
            await asyncio.sleep(0.2)
            await proxy.up()
            await wait_for(lambda: writer.backlog == 0)
        assert count(direct, "calls") == len(batch)
        assert (writer.dropped, writer.flushed) == (0, rows_in(batch))
    finally:
        await proxy.down()
        engine.dispose()
        direct.dispose()


@pytest.mark.asyncio
async def test_sqlite_unavailable_at_start_then_migrated_and_written(
    tmp_path: Path, mixed_calls: list[Call]
) -> None:
    url = f"sqlite:///{tmp_path / 'later' / 'ctid.db'}"
    engine = make_engine(url)
    try:
        writer = StoreWriter(
            engine, numbers=TEST_NUMBERS, flush_ms=10, prepare=upgrade_engine, backoff=FAST_BACKOFF
        )
        async with writer_running(writer):
            for unit in units(mixed_calls[:5]):
                writer.put(unit)
            await wait_for(lambda: writer.last_error is not None)
            assert "unable to open database file" in (writer.last_error or "")
            (tmp_path / "later").mkdir()
            await wait_for(lambda: writer.backlog == 0)
        assert count(engine, "calls") == 5
    finally:
        engine.dispose()


def down_sqlite(tmp_path: Path) -> tuple[str, Engine]:
    url = f"sqlite:///{tmp_path / 'db' / 'ctid.db'}"
    return url, make_engine(url)


@pytest.mark.asyncio
async def test_past_the_memory_bound_rows_spill_to_the_spool_and_drain_in_order(
    tmp_path: Path, mixed_calls: list[Call]
) -> None:
    url, engine = down_sqlite(tmp_path)
    spool = Spool(tmp_path / "spool.jsonl", max_rows=10_000)
    batch = units(mixed_calls)
    try:
        writer = StoreWriter(
            engine,
            numbers=TEST_NUMBERS,
            flush_ms=10,
            batch_rows=7,
            memory_rows=10,
            spool=spool,
            backoff=FAST_BACKOFF,
        )
        async with writer_running(writer):
            for unit in batch:
                # The daemon hands rows over per TCP read; a burst beyond twice the memory
                # bound within one read would outrun the spill thread (and be dropped).
                writer.put(unit)
                await wait_for(lambda: not writer.spill_pending)
            # A newer version of the first call, queued last: it must also be written last.
            writer.put(call_rows(dataclasses.replace(mixed_calls[0], cause=99)))
            await wait_for(lambda: writer.last_error is not None and not writer.spill_pending)
            assert spool.path.exists()
            assert spool.unread > 0
            assert writer.backlog == rows_in(batch) + len(batch[0])
            upgrade(url)
            await wait_for(lambda: writer.backlog == 0 and not spool.path.exists())
        assert count(engine, "calls") == len(batch)
        with engine.connect() as connection:
            first = load_calls_by_id(connection, "pbx", [mixed_calls[0].linkedid])
        assert first[0].cause == 99
        assert count(engine, "call_segments") == rows_in(batch) - len(batch)
        assert writer.dropped == 0
    finally:
        engine.dispose()


@pytest.mark.asyncio
async def test_past_both_bounds_rows_are_dropped_and_counted(
    tmp_path: Path, mixed_calls: list[Call]
) -> None:
    url, engine = down_sqlite(tmp_path)
    one_row = [[StoreRow("gaps", {"pbx": "p", "started_at": float(i), "ended_at": None})]
               for i in range(30)]  # fmt: skip
    spool = Spool(tmp_path / "spool.jsonl", max_rows=8)
    try:
        writer = StoreWriter(
            engine,
            numbers=TEST_NUMBERS,
            flush_ms=10,
            memory_rows=5,
            spool=spool,
            backoff=FAST_BACKOFF,
        )
        async with writer_running(writer):
            for unit in one_row:
                writer.put(unit)
                await wait_for(lambda: not writer.spill_pending)
            assert writer.dropped == 30 - 5 - 8
            upgrade(url)
            await wait_for(lambda: writer.backlog == 0)
        assert count(engine, "gaps") == 13
    finally:
        engine.dispose()


@pytest.mark.asyncio
async def test_close_spools_what_it_could_not_write_and_the_next_run_drains_it(
    tmp_path: Path, mixed_calls: list[Call]
) -> None:
    url, engine = down_sqlite(tmp_path)
    path = tmp_path / "spool.jsonl"
    batch = units(mixed_calls[:12])
    try:
        first = StoreWriter(
            engine, numbers=TEST_NUMBERS, flush_ms=10, spool=Spool(path, 1000), backoff=FAST_BACKOFF
        )
        task = asyncio.create_task(first.run())
        for unit in batch:
            first.put(unit)
        await wait_for(lambda: first.last_error is not None)
        await first.close(grace=0.1)
        await task
        assert path.exists()
        assert first.dropped == 0
        upgrade(url)
        second = StoreWriter(engine, numbers=TEST_NUMBERS, flush_ms=10, spool=Spool(path, 1000))
        async with writer_running(second):
            await wait_for(lambda: second.backlog == 0 and not path.exists())
        assert count(engine, "calls") == 12
    finally:
        engine.dispose()


@pytest.mark.asyncio
async def test_invalid_rows_are_rejected_and_counted_the_rest_is_written(
    sqlite_url: str, mixed_calls: list[Call]
) -> None:
    with migrated(sqlite_url) as engine:
        writer = StoreWriter(engine, numbers=TEST_NUMBERS, flush_ms=10, batch_rows=100)
        good = units(mixed_calls[:3])
        bad_call = call_rows(dataclasses.replace(mixed_calls[3], linkedid="bad"))
        bad_call[0].values["direction"] = None  # NOT NULL
        async with writer_running(writer):
            for unit in [good[0], bad_call, good[1], good[2]]:
                writer.put(unit)
            await wait_for(lambda: writer.backlog == 0)
        assert count(engine, "calls") == 3
        assert writer.rejected == writer.dropped == len(bad_call)
        assert writer.flushed == rows_in(good)


@pytest.mark.asyncio
async def test_metrics_show_backlog_drops_and_health(
    tmp_path: Path, mixed_calls: list[Call]
) -> None:
    _, engine = down_sqlite(tmp_path)
    try:
        writer = StoreWriter(
            engine, numbers=TEST_NUMBERS, flush_ms=10, memory_rows=3, backoff=FAST_BACKOFF
        )
        collector = StoreCollector(writer)
        async with writer_running(writer):
            for i in range(5):
                writer.put([StoreRow("gaps", {"pbx": "p", "started_at": i, "ended_at": None})])
            await wait_for(lambda: not writer.healthy)
            samples = {m.name: m.samples[0].value for m in collector.collect()}
        assert samples == {
            "ctid_store_up": 0.0,
            "ctid_store_backlog_rows": 3.0,
            "ctid_store_rows_written": 0.0,
            "ctid_store_rows_dropped": 2.0,
            "ctid_store_rows_rejected": 0.0,
        }
    finally:
        engine.dispose()
