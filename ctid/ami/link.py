"""One AMI connection's mechanics: actions matched to answers by ``ActionID``.

Used by :mod:`ctid.ami.client`, which adds login, pings and reconnects on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from ctid.ami.codec import AmiCodec, Banner, Message, encode_message
from ctid.errors import AmiError

Deliver = Callable[[list[Message], int, float], None]
"""Receives the plain events of one read, the number of frames read, and the receive time."""

_READ_SIZE = 64 * 1024


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[list[Message]]
    items: list[Message] | None  # events gathered by a list action; None for a plain action


class AmiLink:
    """One TCP connection: sends actions and routes what it reads to their futures."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        codec: AmiCodec,
        ids: Iterator[int],
        deliver: Deliver,
    ) -> None:
        self._reader, self._writer, self._codec = reader, writer, codec
        self._ids, self._deliver = ids, deliver
        self._pending: dict[str, _Pending] = {}
        self._lock = asyncio.Lock()
        self._closed = False
        self.banner: Banner | None = None

    async def read_banner(self, limit: float) -> Banner:
        try:
            async with asyncio.timeout(limit):
                while self.banner is None:
                    await self.read_once()
        except TimeoutError:
            raise AmiError(f"no AMI banner within {limit:g} s") from None
        return self.banner

    async def request(
        self, name: str, headers: Mapping[str, str], limit: float, *, is_list: bool, pump: bool
    ) -> list[Message]:
        """Send an action and wait for its answer; ``pump`` reads inline (no reader task yet)."""
        action_id, future = self._start(name, headers, is_list=is_list)
        try:
            async with asyncio.timeout(limit):
                await self._drain()
                while pump and not future.done():
                    await self.read_once()
                return await future
        except TimeoutError:
            raise AmiError(f"no answer to {name} within {limit:g} s") from None
        finally:
            self._pending.pop(action_id, None)

    def send_now(
        self, name: str, headers: Mapping[str, str], limit: float
    ) -> Coroutine[Any, Any, Message]:
        """Write a plain action at once, from a callback; await the result for the answer.

        For decisions taken in an event callback: the bytes are in the socket before the rest
        of the current read is processed, not after the next turns of the event loop.
        """
        action_id, future = self._start(name, headers, is_list=False)
        return self._answer(name, action_id, future, limit)

    async def _answer(
        self, name: str, action_id: str, future: asyncio.Future[list[Message]], limit: float
    ) -> Message:
        try:
            async with asyncio.timeout(limit):
                (response,) = await future
                return response
        except TimeoutError:
            raise AmiError(f"no answer to {name} within {limit:g} s") from None
        finally:
            self._pending.pop(action_id, None)

    def _start(
        self, name: str, headers: Mapping[str, str], *, is_list: bool
    ) -> tuple[str, asyncio.Future[list[Message]]]:
        """Register the action's answer slot and put the action in the transport's buffer.

        ``transport.write`` never blocks and keeps whole messages in order, so no lock is
        needed here; only waiting for the buffer to drain is serialised (:meth:`_drain`).
        """
        if self._closed:
            raise AmiError(f"cannot send {name}: link to the pbx is closed")
        action_id = f"ctid-{next(self._ids)}"
        future: asyncio.Future[list[Message]] = asyncio.get_running_loop().create_future()
        try:
            self._writer.write(encode_message("Action", name, {**headers, "ActionID": action_id}))
        except (OSError, RuntimeError) as err:
            raise AmiError(f"write to the pbx failed: {err}") from err
        self._pending[action_id] = _Pending(future, [] if is_list else None)
        return action_id, future

    def last_frame_timestamp(self) -> float | None:
        """PBX time of the newest frame received (what a crash leaves provable)."""
        return self._codec.last_frame_timestamp()

    async def read_loop(self) -> NoReturn:
        while True:
            await self.read_once()

    async def read_once(self) -> None:
        try:
            data = await self._reader.read(_READ_SIZE)
        except OSError as err:
            raise AmiError(f"read from the pbx failed: {err}") from err
        received = time.time()
        if not data:
            raise AmiError("connection closed by the pbx")
        seen = self._codec.frames_seen
        events = [e for m in self._codec.feed(data) if (e := self._route(m)) is not None]
        self._deliver(events, self._codec.frames_seen - seen, received)

    def _route(self, message: Message | Banner) -> Message | None:
        """Take banner and action answers; return the events meant for ``on_messages``."""
        if isinstance(message, Banner):
            self.banner = message
            return None
        pending = self._pending.get(message.get("ActionID") or "")
        if pending is None or pending.future.done():
            # Stray responses (answers after a timeout) are dropped.
            return message if message.is_event else None
        if message.is_response:
            failed = message.name.lower() == "error"
            if pending.items is None:
                pending.future.set_result([message])
            elif failed:
                reason = message.get("Message", "?")
                pending.future.set_exception(AmiError(f"list action refused: {reason}"))
            return None
        if pending.items is None:
            # An event tied to a plain action (OriginateResponse) is an ordinary event.
            return message
        if (message.get("EventList") or "").lower() == "complete":
            pending.future.set_result(pending.items)
        else:
            pending.items.append(message)
        return None

    async def _drain(self) -> None:
        try:
            async with self._lock:
                await self._writer.drain()
        except OSError as err:
            raise AmiError(f"write to the pbx failed: {err}") from err

    async def close(self) -> None:
        """Fail what is pending and drop the socket (nothing worth flushing to a dead link)."""
        self._closed = True
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(AmiError("link to the pbx lost"))
        self._writer.transport.abort()
        with contextlib.suppress(OSError):  # the reset that killed the link, reported again
            await self._writer.wait_closed()


class AmiSession:
    """The actions of one logged-in connection (what ``on_connected`` receives).

    ``timeout`` is per action and defaults to the client's ``action_timeout``; it is part of the
    API (and of the error message), which is why ruff's ASYNC109 is silenced on it.
    """

    def __init__(self, link: AmiLink, timeout: float, *, pump: bool = False) -> None:
        self._link, self._timeout, self._pump = link, timeout, pump

    async def send_action(
        self,
        name: str,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Message:
        """The response (check its ``name``: ``Success`` or ``Error``); AmiError on timeout."""
        wait = self._timeout if timeout is None else timeout
        (response,) = await self._link.request(
            name, headers or {}, wait, is_list=False, pump=self._pump
        )
        return response

    def send_now(
        self, name: str, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> Coroutine[Any, Any, Message]:
        """Write the action before returning (callable from an event callback); await the
        result for the response, as with :meth:`send_action`."""
        wait = self._timeout if timeout is None else timeout
        return self._link.send_now(name, headers or {}, wait)

    async def send_list_action(
        self,
        name: str,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[Message]:
        """The item events, once the ``EventList: Complete`` event arrived; AmiError on Error."""
        wait = self._timeout if timeout is None else timeout
        return await self._link.request(name, headers or {}, wait, is_list=True, pump=self._pump)
