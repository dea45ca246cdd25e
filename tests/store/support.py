"""Helpers for the store tests: replay captures into rows, compare stored calls."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from sqlalchemy import Engine, func, make_url, select

from ctid.config import Settings
from ctid.privacy import mask_number
from ctid.replay import ReplayResult, replay_streams
from ctid.store.capture import capture_rows
from ctid.store.engine import make_engine
from ctid.store.migrate import upgrade
from ctid.store.number_key import NumberHasher
from ctid.store.number_protect import NumberKeys, NumberProtector
from ctid.store.schema import metadata
from ctid.store.upsert import write_rows
from ctid.store.writer import StoreWriter
from ctid.tracker.model import Call
from tests.truth import capture_streams

FAST_BACKOFF = (0.01, 0.05)
TEST_NUMBERS = NumberKeys.fixed(NumberProtector(NumberHasher(b"test-key-" * 4, "US"), None))
"""Numbers hashed with a key of the tests' own, nothing sealed: for writers nobody matches."""


def numbers_at(key_file: Path | None = None, sealed_with: Path | None = None) -> NumberKeys:
    """What ``ctid`` with these key files (default: the test's private data dir, region US)
    stores numbers with, so the commands' follow-ups and leads match the stored calls."""
    store = Settings().store  # CTID_STORE__DATA_DIR: the test's own directory
    files = {"number_key_file": key_file, "number_encryption_key_file": sealed_with}
    return NumberKeys.from_store(store.model_copy(update={k: v for k, v in files.items() if v}))


@contextmanager
def migrated(url: str) -> Iterator[Engine]:
    upgrade(url)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def store_capture(
    engine: Engine, name: str, pbx: str | None = None, numbers: NumberKeys | None = None
) -> ReplayResult:
    """Everything a capture holds, written straight (no writer task): calls, CDRs, gaps;
    numbers protected with ``numbers`` (default :func:`numbers_at`)."""
    capture = capture_rows(capture_streams(name), pbx=pbx or name)
    rows = [row for unit in capture.units for row in unit]
    write_rows(engine, rows, (numbers or numbers_at()).protector())
    return capture.replay


async def replay_through_writer(writer: StoreWriter, name: str, pbx: str) -> ReplayResult:
    """Replay with the writer as an effect sink, as the daemon runs it, and let it flush."""
    result = replay_streams(capture_streams(name), pbx=pbx, sinks=[writer])
    await wait_for(lambda: writer.backlog == 0)
    return result


@asynccontextmanager
async def writer_running(writer: StoreWriter) -> AsyncIterator[StoreWriter]:
    """The writer's task for the block; closed (flushed) and awaited on the way out."""
    task = asyncio.create_task(writer.run())
    try:
        yield writer
    finally:
        await writer.close()
        await task


async def wait_for(condition: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        # Polling: the writer has no event for "backlog reached N", and tests need none.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        value = connection.execute(select(func.count()).select_from(metadata.tables[table]))
        return int(value.scalar_one())


def call_facts(call: Call) -> tuple[object, ...]:
    """What a stored call must keep, times to the microsecond the column holds.

    ``Call.seat`` is left out: with two segments starting together (a conference) it depends
    on segment order, which the store does not keep; the ``seat`` column is checked instead.
    The number is compared masked: the store keeps no other readable form.
    """
    segments = sorted(
        (
            s.seat,
            s.seat_channel,
            s.ext_channel,
            round(s.talk_seconds, 9),
            round(s.hold_seconds, 9),
            [(round(a, 6), round(b, 6)) for a, b in s.talk_intervals],
            [(round(a, 6), round(b, 6)) for a, b in s.hold_intervals],
        )
        for s in call.segments.values()
    )
    return (
        call.pbx,
        call.linkedid,
        str(call.direction),
        mask_number(call.remote),  # masking a masked number changes nothing
        call.placed_by,
        _us(call.started_at),
        _us(call.answered_at),
        _us(call.ended_at),
        call.outcome,
        call.cause,
        call.fax,
        call.interrupted,
        segments,
    )


def _us(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class TcpProxy:
    """A port in front of PostgreSQL that can be down (nothing listens) or up (forwarding)."""

    def __init__(self, server_url: str) -> None:
        url = make_url(server_url)
        self.target = (url.host or "127.0.0.1", url.port or 5432)
        self.port = free_port()
        self.url = url.set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self._writers:
                writer.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()
