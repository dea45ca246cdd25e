"""No ctid at all: read the paced stream and drop it, to find the floor under any asyncio client.

* ``bare``: asyncio streams with 64 KiB reads, as ``ctid.ami.link`` reads today (the selector
  transport underneath receives into a fresh 256 KiB buffer on every read);
* ``bare_64k``: the same with the transport's receive size set to 64 KiB;
* ``bare_buffered``: an ``asyncio.BufferedProtocol`` receiving into one reused buffer.
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection

from bench.subject import HOST, RUN_TIMEOUT_S, Job, Outcome

READ_SIZE = 64 * 1024  # what ctid.ami.link reads at a time
DONE_TAIL = b"BenchDone\r\n\r\n"
LOGIN = b"Action: Login\r\nUsername: ctid\r\nSecret: ctidsecret\r\n\r\n"


async def run_bare(job: Job, conn: Connection) -> Outcome:
    start, cpu = time.perf_counter(), time.process_time()
    async with asyncio.timeout(RUN_TIMEOUT_S):
        if job.client == "bare_buffered":
            await _buffered(job.port)
        else:
            await _streams(job.port, job.client == "bare_64k")
    outcome = Outcome()
    outcome.seconds, outcome.cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    return outcome


async def _streams(port: int, small: bool) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    if small:
        # A private attribute of the selector transport (CPython 3.11): what recv() asks for.
        writer.transport.max_size = READ_SIZE  # type: ignore[attr-defined]
    writer.write(LOGIN)
    tail = b""
    try:
        while not tail.endswith(DONE_TAIL):
            data = await reader.read(READ_SIZE)
            if not data:
                break
            tail = (tail + data)[-len(DONE_TAIL) :]
    finally:
        writer.close()


class _Sink(asyncio.BufferedProtocol):
    def __init__(self, done: asyncio.Future[None]) -> None:
        self._buffer = bytearray(READ_SIZE)
        self._tail = b""
        self._done = done

    def get_buffer(self, sizehint: int) -> bytearray:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self._tail = (self._tail + bytes(self._buffer[:nbytes]))[-len(DONE_TAIL) :]
        if self._tail.endswith(DONE_TAIL) and not self._done.done():
            self._done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_result(None)


async def _buffered(port: int) -> None:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    transport, _ = await asyncio.get_running_loop().create_connection(
        lambda: _Sink(done), HOST, port
    )
    transport.write(LOGIN)
    try:
        await done
    finally:
        transport.close()
