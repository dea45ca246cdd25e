"""A SQLite store that runs out of space: rows wait (memory, then the spool elsewhere), none
is dropped, the writer says it is unhealthy, tracking goes on; once there is space again
every row lands exactly once.

Two ways to fill the disk, both ending in SQLite's ``SQLITE_FULL`` ("database or disk is
full"): a real filesystem that is full (a small tmpfs filled to the last block; needs the
right to mount, else skipped), and ``PRAGMA max_page_count`` pinned to the file's current
size on every connection the writer takes from its pool.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event, func, select, text

from ctid.ami.capture import parse_capture
from ctid.ami.codec import AmiCodec, Message
from ctid.ami.events import TRACKED_EVENTS, AmiEvent, CdrWritten
from ctid.pipeline import PbxPipeline
from ctid.store.capture import capture_rows
from ctid.store.engine import make_engine
from ctid.store.metrics import StoreCollector
from ctid.store.migrate import upgrade
from ctid.store.schema import metadata
from ctid.store.spool import Spool
from ctid.store.upsert import PRIMARY_KEYS
from ctid.store.writer import StoreWriter
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker
from tests.store.support import FAST_BACKOFF, TEST_NUMBERS, count, wait_for, writer_running
from tests.truth import capture_streams, load_truth, seat_mismatches

CAPTURE = "mixed_busy_period"
READ_SIZE = 64 * 1024
"""The daemon hands rows to the writer once per AMI read of this size."""
MEMORY_ROWS = 50
"""Far below the capture's rows: most of them must go to the spool while the disk is full."""
BATCH_ROWS = 25
SQLITE_DEFAULT_MAX_PAGES = 1_073_741_823


@dataclass
class FullDisk:
    """A SQLite database whose disk can be filled up and freed again."""

    url: str
    engine: Engine
    fill: Callable[[], None]
    free: Callable[[], None]
    nothing_fits: bool
    """A page limit still lets a write fill the free space inside the file's pages."""


def _mount_tmpfs(where: Path, size: str) -> str | None:
    """Mount a tmpfs at ``where``; the reason it could not be done, or None."""
    if shutil.which("mount") is None:
        return "no mount command"
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    return None if done.returncode == 0 else (done.stderr.strip() or "mount failed")


def _fill_to_the_last_byte(path: Path) -> None:
    """Write ``path`` until the filesystem has no block left (big writes, then smaller)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


@pytest.fixture
def tmpfs_disk(tmp_path: Path) -> Iterator[FullDisk]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    reason = _mount_tmpfs(mount_point, "8m")
    if reason is not None:
        pytest.skip(f"cannot mount a tmpfs to fill ({reason}); the page-limit case still runs")
    url = f"sqlite:///{mount_point / 'ctid.db'}"
    filler = mount_point / "filler"
    engine: Engine | None = None
    try:
        upgrade(url)
        engine = make_engine(url)

        def fill() -> None:
            assert engine is not None
            # An empty WAL file: the next commit needs new blocks, which there are none of.
            with engine.connect() as connection:
                connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            _fill_to_the_last_byte(filler)
            assert os.statvfs(mount_point).f_bavail == 0

        def free() -> None:
            filler.unlink()

        yield FullDisk(url, engine, fill, free, nothing_fits=True)
    finally:
        if engine is not None:
            engine.dispose()
        subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=30)


@pytest.fixture
def page_limited_disk(tmp_path: Path) -> Iterator[FullDisk]:
    (tmp_path / "db").mkdir()
    url = f"sqlite:///{tmp_path / 'db' / 'ctid.db'}"
    upgrade(url)
    engine = make_engine(url)
    limit = [SQLITE_DEFAULT_MAX_PAGES]

    @event.listens_for(engine, "checkout")
    def _apply_limit(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # Per connection, so it is set on every checkout: pooled connections follow changes.
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA max_page_count = {limit[0]}")
        finally:
            cursor.close()

    def fill() -> None:
        with engine.connect() as connection:
            limit[0] = int(connection.execute(text("PRAGMA page_count")).scalar_one())

    def free() -> None:
        limit[0] = SQLITE_DEFAULT_MAX_PAGES

    try:
        yield FullDisk(url, engine, fill, free, nothing_fits=False)
    finally:
        engine.dispose()


@pytest.fixture(params=["tmpfs", "page_limit"])
def full_disk(request: pytest.FixtureRequest) -> FullDisk:
    fixture = "tmpfs_disk" if request.param == "tmpfs" else "page_limited_disk"
    disk: FullDisk = request.getfixturevalue(fixture)
    return disk


def table_rows(data: bytes, pbx: str) -> tuple[int, dict[str, int]]:
    """Rows the capture gives the writer, and the distinct keys per table (what gets stored)."""
    units = capture_rows([data], pbx=pbx).units
    keys: dict[str, set[tuple[Any, ...]]] = {}
    for unit in units:
        for table, values in unit:
            keys.setdefault(table, set()).add(tuple(values[c] for c in PRIMARY_KEYS[table]))
    return sum(len(unit) for unit in units), {table: len(found) for table, found in keys.items()}


async def stream_through(pipeline: PbxPipeline, data: bytes, writer: StoreWriter) -> None:
    """The capture through codec and pipeline one 64 KiB read at a time, as the daemon
    reads it; between reads the spill task gets its turn, as it would in the daemon."""
    codec = AmiCodec(keep_events=TRACKED_EVENTS)
    # Frames without a Timestamp (FullyBooted) get the stream's first PBX time.
    fallback = next(f.timestamp for f in parse_capture(data).events if f.timestamp is not None)
    for offset in range(0, len(data), READ_SIZE):
        batch = [m for m in codec.feed(data[offset : offset + READ_SIZE]) if isinstance(m, Message)]
        pipeline.on_messages(batch, fallback)
        await wait_for(lambda: not writer.spill_pending)


@pytest.mark.asyncio
async def test_a_full_disk_keeps_every_row_and_writes_each_once_when_space_returns(
    full_disk: FullDisk, tmp_path: Path
) -> None:
    data = capture_streams(CAPTURE)[0]
    truth = load_truth(CAPTURE)
    spool = Spool(tmp_path / "spool" / "store-spool.jsonl", max_rows=100_000)
    before = capture_streams("answered_customer_hangup")[0]
    engine = full_disk.engine
    writer = StoreWriter(
        engine,
        numbers=TEST_NUMBERS,
        flush_ms=10,
        batch_rows=BATCH_ROWS,
        memory_rows=MEMORY_ROWS,
        spool=spool,
        backoff=FAST_BACKOFF,
    )
    collector = StoreCollector(writer)

    def pipeline(pbx: str) -> PbxPipeline:
        def cdrs(event: AmiEvent) -> None:
            if isinstance(event, CdrWritten):
                writer.record_cdr(pbx, event)

        tallies = DailyTallies(ZoneInfo("UTC"))
        return PbxPipeline(CallTracker(pbx, EndpointDirectory()), tallies, [writer], [cdrs])

    async with writer_running(writer):
        # Room on the disk: written as usual.
        await stream_through(pipeline("pbx-a"), before, writer)
        await wait_for(lambda: writer.backlog == 0)
        written_before = writer.flushed
        assert written_before == table_rows(before, "pbx-a")[0]

        full_disk.fill()
        busy = pipeline("pbx-b")
        await stream_through(busy, data, writer)
        rows, expected = table_rows(data, "pbx-b")
        await wait_for(lambda: not writer.healthy)
        # Tracking went on: the calls of the busy period are all counted.
        assert seat_mismatches(truth, busy.tallies.totals()) == []
        # Nothing written while full (under a page limit, at most a batch that fitted the free
        # space inside the file's pages), nothing dropped; past memory_rows the rows went to
        # the spool file, which is not on the full disk.
        assert "database or disk is full" in (writer.last_error or "")
        waiting = writer.backlog
        assert writer.flushed - written_before + waiting == rows
        assert waiting >= rows - BATCH_ROWS
        if full_disk.nothing_fits:
            assert waiting == rows
        assert (writer.dropped, writer.rejected) == (0, 0)
        assert spool.unread >= waiting - MEMORY_ROWS
        assert not spool.path.is_relative_to(Path(full_disk.url.removeprefix("sqlite:///")).parent)
        samples = {m.name: m.samples[0].value for m in collector.collect()}
        assert samples["ctid_store_up"] == 0.0
        assert samples["ctid_store_backlog_rows"] == waiting
        assert samples["ctid_store_rows_dropped"] == 0.0

        full_disk.free()
        await wait_for(lambda: writer.backlog == 0 and not spool.path.exists(), within=30)
        assert writer.healthy

    # Every row landed exactly once: the writer wrote each row one time, and the tables hold
    # one row per key.
    assert writer.flushed == written_before + rows
    assert (writer.dropped, writer.rejected) == (0, 0)
    with engine.connect() as connection:
        stored = {
            table: connection.execute(
                select(func.count())
                .select_from(metadata.tables[table])
                .where(metadata.tables[table].c.pbx == "pbx-b")
            ).scalar_one()
            for table in expected
        }
    assert stored == expected
    assert expected["calls"] == len(truth["expected"]["per_call"])
    assert count(engine, "calls") == expected["calls"] + 1
