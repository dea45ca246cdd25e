"""A TCP AMI server replaying recorded captures, for integration tests and the demo.

Per connection: the banner, then actions are answered (Login plain or MD5, Ping, three list
actions, Logoff; Hangup and Redirect get ``Success`` and are only recorded in
``actions_received``) and after a successful login the capture's events are streamed, as fast
as the socket takes them or at the recorded pace.  It is not a pbx: list actions answer with
whatever ``list_items`` returns (nothing by default, like the idle pbx the captures start from).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self

import structlog

from ctid.ami.capture import Capture
from ctid.ami.codec import Message
from ctid.ami.replay_session import ReplaySession

ListItems = Callable[[str], Iterable[Mapping[str, str]]]
"""Given a list action's name (``CoreShowChannels``), the header dicts of its item events.
An ``Event`` key names the item event; without it the action's usual item event is used."""

Chunker = Callable[[bytes], Iterable[bytes]]
"""Cuts outgoing event bytes into the pieces written to the socket one at a time."""

_LOG = structlog.get_logger(__name__)
_CLOSE_GRACE = 1.0


def no_items(action: str) -> list[Mapping[str, str]]:
    """Default :data:`ListItems`: an idle pbx."""
    return []


def fixed_chunks(size: int) -> Chunker:
    """A :data:`Chunker` cutting every ``size`` bytes (1 splits every UTF-8 character)."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, not {size}")

    def cut(data: bytes) -> Iterable[bytes]:
        return (data[i : i + size] for i in range(0, len(data), size))

    return cut


class AmiReplayServer:
    """Serve ``captures`` over TCP: the n-th successful login gets the n-th capture.

    Logins past the last capture get an idle session (no events) unless ``loop`` is set, which
    cycles through the captures and restarts each one when exhausted (for the demo).
    """

    def __init__(
        self,
        captures: Capture | Sequence[Capture],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "ctid",
        secret: str = "ctidsecret",
        speed: float | None = None,
        chunk_size: int | None = None,
        chunking: Chunker | None = None,
        close_after_stream: bool = False,
        loop: bool = False,
        list_items: ListItems = no_items,
        stall_on_connect: bool = False,
        stall_after_banner: bool = False,
        ignore_pings: bool = False,
        retime: bool = False,
    ) -> None:
        self.captures = [captures] if isinstance(captures, Capture) else list(captures)
        if not self.captures:
            raise ValueError("at least one capture is needed")
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self.host, self._port = host, port
        self.username, self.secret = username, secret
        self.speed = speed
        self.chunking = chunking or (fixed_chunks(chunk_size) if chunk_size else None)
        self.close_after_stream, self.loop = close_after_stream, loop
        self.list_items = list_items
        self.stall_on_connect, self.stall_after_banner = stall_on_connect, stall_after_banner
        self.ignore_pings = ignore_pings
        self.retime = retime
        """Shift each pass's timestamps and unique ids to the present (the live demo)."""
        self.connections = 0
        """TCP connections accepted so far."""
        self.logins: list[str] = []
        """Auth type (``plain`` or ``md5``) of each successful login, in order."""
        self.actions_received: list[Message] = []
        """Every frame a client sent except Login and Challenge, in arrival order."""
        self._server: asyncio.Server | None = None
        self._handlers: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    @property
    def port(self) -> int:
        """The bound TCP port (useful with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("server not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_client, self.host, self._port)

    async def close(self) -> None:
        """Stop listening and end every connection, awaiting their handlers."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await asyncio.sleep(0)  # let handlers of just-accepted sockets register themselves
        # Aborting the sockets lets each session see EOF and end on its own; cancelling the
        # handler tasks instead makes Python 3.11's start_server log the CancelledError.
        for writer in self._handlers.values():
            writer.transport.abort()
        handlers = list(self._handlers)
        if handlers:
            _, stuck = await asyncio.wait(handlers, timeout=_CLOSE_GRACE)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def capture_for(self, session: int) -> Capture | None:
        """The capture of the ``session``-th login (0-based); None past the end (idle)."""
        if self.loop:
            return self.captures[session % len(self.captures)]
        return self.captures[session] if session < len(self.captures) else None

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # start_server runs every client callback in its own task
        self._handlers[task] = writer
        self.connections += 1
        try:
            await ReplaySession(self, reader, writer).run()
        except Exception:
            # One misbehaving client (or a faulty list_items) must not take the server down.
            _LOG.exception("replay_connection_failed")
        finally:
            self._handlers.pop(task, None)
            await _close_writer(writer)


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    """Close gracefully (flush what is queued), but abort a peer that does not read."""
    writer.close()
    try:
        async with asyncio.timeout(_CLOSE_GRACE):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        writer.transport.abort()
