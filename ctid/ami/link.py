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
from ctid.ami.receiver import Receiver
from ctid.errors import AmiError

Deliver = Callable[[list[Message], int, float], None]
"""Receives the plain events of one read, the number of frames read, and the receive time."""


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[list[Message]]
    items: list[Message] | None  # events gathered by a list action; None for a plain action


class AmiLink:
    """One TCP connection: sends actions and routes what it reads to their futures.

    Opened with :meth:`open`; what arrives is decoded and delivered from the event loop's read
    callback (:mod:`ctid.ami.receiver`), so the bytes of a read are in the pipeline before the
    loop does anything else.
    """

    def __init__(self, codec: AmiCodec, ids: Iterator[int], deliver: Deliver) -> None:
        self._codec, self._ids, self._deliver = codec, ids, deliver
        self._pending: dict[str, _Pending] = {}
        self._lock = asyncio.Lock()
        self._closed = False
        self._last_read = 0.0
        """``time.monotonic()`` of the last read: what proves a pbx alive while a Ping waits."""
        self.banner: Banner | None = None
        self._banner_seen: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._receiver = Receiver(self._on_data, self._on_closed)

    @classmethod
    async def open(
        cls, host: str, port: int, codec: AmiCodec, ids: Iterator[int], deliver: Deliver
    ) -> AmiLink:
        """Connect (OSError when it cannot); the caller bounds the time it may take."""
        link = cls(codec, ids, deliver)
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: link._receiver, host, port)
        return link

    async def read_banner(self, limit: float) -> Banner:
        try:
            async with asyncio.timeout(limit):
                await asyncio.wait(
                    (self._banner_seen, self._receiver.closed),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        except TimeoutError:
            raise AmiError(f"no AMI banner within {limit:g} s") from None
        if self.banner is None:
            await asyncio.shield(self._receiver.closed)  # raises why the connection ended
        assert self.banner is not None
        return self.banner

    async def request(
        self, name: str, headers: Mapping[str, str], limit: float, *, is_list: bool
    ) -> list[Message]:
        """Send an action and wait for its answer (AmiError if the link ends first)."""
        action_id, future = self._start(name, headers, is_list=is_list)
        try:
            async with asyncio.timeout(limit):
                await self._drain()
                return await future
        except TimeoutError:
            raise AmiError(f"no answer to {name} within {limit:g} s") from None
        finally:
            self._pending.pop(action_id, None)

    async def ping(self, quiet_limit: float) -> None:
        """Send a Ping; AmiError once neither its answer nor anything else came for
        ``quiet_limit`` seconds.

        A pbx still streaming events is alive even while the answer waits behind seconds of
        them (a busy floor read by a daemon that fell behind): only silence counts against it.
        """
        action_id, future = self._start("Ping", {}, is_list=False)
        sent = time.monotonic()
        try:
            await self._drain()
            while True:
                left = max(sent, self._last_read) + quiet_limit - time.monotonic()
                if left <= 0:
                    raise AmiError(
                        f"no answer to Ping, nor anything else, within {quiet_limit:g} s"
                    )
                done, _ = await asyncio.wait((future,), timeout=left)
                if done:
                    future.result()  # AmiError when the link ended first
                    return
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
        self._receiver.write(encode_message("Action", name, {**headers, "ActionID": action_id}))
        self._pending[action_id] = _Pending(future, [] if is_list else None)
        return action_id, future

    def last_frame_timestamp(self) -> float | None:
        """PBX time of the newest frame received (what a crash leaves provable)."""
        return self._codec.last_frame_timestamp()

    async def read_loop(self) -> NoReturn:
        """Wait while the connection lasts; raise why it ended."""
        # Shielded: cancelling this task must not cancel the link's own "closed" future.
        await asyncio.shield(self._receiver.closed)
        raise AssertionError("the receiver's future only ever fails")

    def _on_data(self, data: bytes, received: float) -> None:
        self._last_read = time.monotonic()
        seen = self._codec.frames_seen
        events = [e for m in self._codec.feed(data) if (e := self._route(m)) is not None]
        self._deliver(events, self._codec.frames_seen - seen, received)

    def _on_closed(self, reason: BaseException) -> None:
        """Actions waiting for an answer fail now, not at their timeout."""
        self._closed = True
        lost = AmiError(f"link to the pbx lost: {reason}")
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(lost)
        if not self._banner_seen.done():
            self._banner_seen.cancel()

    def _route(self, message: Message | Banner) -> Message | None:
        """Take banner and action answers; return the events meant for ``on_messages``."""
        if isinstance(message, Banner):
            self.banner = message
            if not self._banner_seen.done():
                self._banner_seen.set_result(None)
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
        async with self._lock:
            await self._receiver.drain()

    async def close(self) -> None:
        """Fail what is pending and drop the socket (nothing worth flushing to a dead link)."""
        self._receiver.fail(AmiError("link to the pbx lost"))
        with contextlib.suppress(Exception):
            await asyncio.shield(self._receiver.closed)  # retrieved: read_loop reported it
        if self._receiver.transport is not None:
            await asyncio.shield(self._receiver.lost)  # the socket is closed once it is lost


class AmiSession:
    """The actions of one logged-in connection (what ``on_connected`` receives).

    ``timeout`` is per action and defaults to the client's ``action_timeout``; it is part of the
    API (and of the error message), which is why ruff's ASYNC109 is silenced on it.
    """

    def __init__(self, link: AmiLink, timeout: float) -> None:
        self._link, self._timeout = link, timeout

    async def send_action(
        self,
        name: str,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Message:
        """The response (check its ``name``: ``Success`` or ``Error``); AmiError on timeout."""
        wait = self._timeout if timeout is None else timeout
        (response,) = await self._link.request(name, headers or {}, wait, is_list=False)
        return response

    async def ping(self) -> None:
        """Ping the pbx: AmiError once neither the answer nor any other frame came in time."""
        await self._link.ping(self._timeout)

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
        return await self._link.request(name, headers or {}, wait, is_list=True)
