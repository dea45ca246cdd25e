"""The socket side of one AMI connection: an asyncio ``BufferedProtocol``.

The event loop reads straight into one reused 64 KiB buffer and hands the bytes to ``on_data``
in the same callback: no ``StreamReader`` buffer to copy through, no reader task to wake, no
future per read.  A slow ``on_data`` still holds back the next read (the loop does not read
again until the callback returns), so there is no queue to grow between socket and pipeline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ctid.errors import AmiError

READ_SIZE = 64 * 1024

OnData = Callable[[bytes, float], None]
"""Receives the bytes of one read and the wall-clock time the read returned."""


class Receiver(asyncio.BufferedProtocol):
    def __init__(self, on_data: OnData, on_closed: Callable[[BaseException], None]) -> None:
        self._buffer = memoryview(bytearray(READ_SIZE))
        self._on_data, self._on_closed = on_data, on_closed
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Fails with the reason once the connection is over (it never succeeds)."""
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the transport has let the socket go."""
        self._writable: asyncio.Future[None] | None = None

    # --- asyncio.BufferedProtocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        received = time.time()
        try:
            self._on_data(bytes(self._buffer[:nbytes]), received)
        except Exception as err:  # any failure of the pipeline ends the link, as it did a read
            self.fail(err)

    def eof_received(self) -> bool:
        self.fail(AmiError("connection closed by the pbx"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        reason = AmiError(f"read from the pbx failed: {exc}") if exc is not None else None
        self.fail(reason or AmiError("connection closed by the pbx"))
        self._wake_writers()
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writers()

    # --- for the link --------------------------------------------------------------------------

    def fail(self, reason: BaseException) -> None:
        """End the connection for ``reason`` (the first reason wins)."""
        if self.closed.done():
            return
        self.closed.set_exception(reason)
        self._on_closed(reason)
        if self.transport is not None:
            self.transport.abort()

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise AmiError("write to the pbx failed: connection closed")
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        while self._writable is not None:
            await asyncio.shield(self._writable)
        if self.closed.done():
            self.closed.exception()  # retrieved: the link reports it through read_loop
            raise AmiError("write to the pbx failed: connection closed")

    def _wake_writers(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
