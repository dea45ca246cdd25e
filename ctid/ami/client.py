"""Asyncio AMI client: login, actions with futures, keepalive pings, reconnect with backoff.

Per TCP connection the banner and the login are read inline; then one :class:`asyncio.TaskGroup`
holds the reader, the pinger and the ``on_connected`` hook.  When any of them fails the link is
closed, pending actions fail with :class:`AmiError`, and :meth:`AmiClient.run` reconnects after a
jittered, growing delay.  Actions are never re-sent on a new link: most AMI actions are not
idempotent, so the caller decides.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from typing import Any, Literal, NoReturn

import structlog

from ctid.ami.backoff import backoff_delay
from ctid.ami.codec import AmiCodec, Message
from ctid.ami.link import AmiLink, AmiSession
from ctid.errors import AmiError

__all__ = ["LIST_EVENTS", "AmiClient", "AmiLoginError", "AmiSession"]

OnMessages = Callable[[list[Message], float], None]
OnConnected = Callable[[AmiSession], Awaitable[None]]
OnDisconnected = Callable[[float | None], None]
"""Called with the PBX ``Timestamp`` of the last frame the lost link delivered, if any."""

LIST_EVENTS = frozenset(
    {
        "CoreShowChannel",
        "CoreShowChannelsComplete",
        "BridgeListItem",
        "BridgeListComplete",
        "QueueParams",
        "QueueMember",
        "QueueEntry",
        "QueueStatusComplete",
        "Status",
        "StatusComplete",
        "EndpointList",
        "EndpointListComplete",
    }
)
"""Events of list actions, kept even when ``keep_events`` filters the stream: a list action
whose items or ``...Complete`` event were dropped by the codec could only time out."""


class AmiLoginError(AmiError):
    """The pbx refused our credentials (or the MD5 challenge)."""


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first link error of a TaskGroup failure; the whole group if anything else is in it."""
    link_errors, others = group.split((OSError, AmiError))
    if others is not None or link_errors is None:
        return group
    first = link_errors.exceptions[0]
    return _unwrap(first) if isinstance(first, BaseExceptionGroup) else first


class AmiClient:
    """A self-healing AMI connection to one pbx: :meth:`run` forever, act while ``connected``."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        username: str,
        secret: str,
        on_messages: OnMessages,
        keep_events: Collection[str] | None = None,
        on_connected: OnConnected | None = None,
        on_disconnected: OnDisconnected | None = None,
        ping_interval: float = 10.0,
        action_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        auth: Literal["plain", "md5"] = "plain",
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.name, self._host, self._port = name, host, port
        self._username, self._secret, self._auth = username, secret, auth
        self._keep = None if keep_events is None else frozenset(keep_events) | LIST_EVENTS
        self._on_messages = on_messages
        self._on_connected, self._on_disconnected = on_connected, on_disconnected
        self._ping_interval, self._action_timeout = ping_interval, action_timeout
        self._connect_timeout = connect_timeout
        self._backoff = (backoff_initial, backoff_max, rng)
        self._ids = itertools.count(1)  # unique across links: a late answer never matches anew
        self._session: AmiSession | None = None
        self._was_up = False  # the link that just ended had logged in
        self._last_frame_at: float | None = None
        self._was_ever_up = False
        self._reported: str | None = None  # last failure state logged: log changes, not retries
        self._log = structlog.get_logger(__name__).bind(pbx=name)
        self.connected = False
        """True while logged in."""
        self.reconnects = 0
        """Successful logins after the first one."""
        self.frames = 0
        """Frames received, responses included (and events dropped by ``keep_events``)."""
        self.last_error: str | None = None
        """Why the last link or attempt ended; never contains the secret."""

    async def send_action(
        self,
        name: str,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Message:
        """See :meth:`AmiSession.send_action`; AmiError when not connected."""
        return await self._current().send_action(name, headers, timeout)

    def send_now(
        self, name: str, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> Coroutine[Any, Any, Message]:
        """See :meth:`AmiSession.send_now`; AmiError (at once) when not connected."""
        return self._current().send_now(name, headers, timeout)

    async def send_list_action(
        self,
        name: str,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[Message]:
        """See :meth:`AmiSession.send_list_action`; AmiError when not connected."""
        return await self._current().send_list_action(name, headers, timeout)

    def _current(self) -> AmiSession:
        if self._session is None:
            raise AmiError(f"pbx {self.name}: not connected")
        return self._session

    async def run(self) -> NoReturn:
        """Connect, log in, read; on any link failure wait (backoff) and start again."""
        initial, maximum, rng = self._backoff
        attempt = 0
        while True:
            try:
                await self._connect_once()
            except (OSError, AmiError) as err:
                if self._note_failure(err):
                    attempt = 0  # the link was up: start the backoff afresh
            delay = backoff_delay(attempt, initial=initial, maximum=maximum, rng=rng)
            attempt += 1
            self._log.debug("ami_retry", attempt=attempt, delay=round(delay, 3))
            await asyncio.sleep(delay)

    async def _connect_once(self) -> None:
        codec = AmiCodec(keep_events=self._keep)
        try:
            async with asyncio.timeout(self._connect_timeout):
                link = await AmiLink.open(self._host, self._port, codec, self._ids, self._deliver)
        except TimeoutError:
            raise AmiError(f"no TCP connection within {self._connect_timeout:g} s") from None
        try:
            session = await self._handshake(link)
            self._link_up(link, session)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(link.read_loop())
                tg.create_task(self._ping_loop(session))
                if self._on_connected is not None:
                    tg.create_task(self._call_on_connected(self._on_connected, session))
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None
        finally:
            self._was_up, self.connected, self._session = self.connected, False, None
            self._last_frame_at = link.last_frame_timestamp()
            await link.close()

    async def _handshake(self, link: AmiLink) -> AmiSession:
        """Banner, then plain or MD5 login."""
        await link.read_banner(self._connect_timeout)
        login = AmiSession(link, self._action_timeout)
        headers = {"Username": self._username}
        if self._auth == "md5":
            reply = await login.send_action("Challenge", {"AuthType": "MD5"})
            challenge = reply.get("Challenge")
            if reply.name.lower() != "success" or not challenge:
                raise AmiLoginError(f"MD5 challenge refused: {reply.get('Message', '?')}")
            key = hashlib.md5((challenge + self._secret).encode(), usedforsecurity=False)
            headers |= {"AuthType": "MD5", "Key": key.hexdigest()}
        else:
            headers["Secret"] = self._secret
        reply = await login.send_action("Login", headers)
        if reply.name.lower() != "success":
            reason = reply.get("Message", "?")
            raise AmiLoginError(f"login as {self._username!r} refused: {reason}")
        return AmiSession(link, self._action_timeout)

    def _link_up(self, link: AmiLink, session: AmiSession) -> None:
        if self._was_ever_up:
            self.reconnects += 1
        self._was_ever_up = True
        self.connected, self._session, self._reported = True, session, None
        version = link.banner.version if link.banner else None
        self._log.info("ami_connected", host=self._host, port=self._port, ami_version=version)

    def _note_failure(self, err: BaseException) -> bool:
        """Record and log (once per state change) why the link ended; True if it had been up."""
        self.last_error = str(err) or type(err).__name__
        if self._was_up:
            # Once: the attempts that follow (refused while the pbx is down) never logged in.
            self._was_up = False
            self._reported = "unavailable"
            self._log.warning("ami_disconnected", reason=self.last_error)
            if self._on_disconnected is not None:
                self._on_disconnected(self._last_frame_at)
            return True
        state = "login_failed" if isinstance(err, AmiLoginError) else "unavailable"
        if state != self._reported:
            self._reported = state
            event = "ami_login_failed" if state == "login_failed" else "ami_unavailable"
            self._log.error(event, host=self._host, port=self._port, reason=self.last_error)
        return False

    def _deliver(self, events: list[Message], frames: int, received: float) -> None:
        self.frames += frames
        if events:
            self._on_messages(events, received)

    async def _ping_loop(self, session: AmiSession) -> NoReturn:
        """A ping unanswered while the pbx sends nothing else raises AmiError and so tears the
        link down: a silent pbx is dead (one whose answer is queued behind events is not)."""
        while True:
            await asyncio.sleep(self._ping_interval)
            await session.ping()

    @staticmethod
    async def _call_on_connected(hook: OnConnected, session: AmiSession) -> None:
        # A coroutine wrapper: TaskGroup.create_task wants a coroutine, the hook is any awaitable.
        await hook(session)
