"""The server side of one replayed AMI connection: answers actions, streams events.

Split from :mod:`ctid.ami.server` (which owns listening and shutdown) so each file stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ctid.ami.capture import Capture, RecordedFrame
from ctid.ami.codec import AmiCodec, Message, encode_message
from ctid.ami.retime import retime_frame
from ctid.errors import AmiProtocolError

if TYPE_CHECKING:
    from ctid.ami.server import AmiReplayServer

_READ_SIZE = 64 * 1024
_BATCH_BYTES = 8 * 1024
"""Event bytes written per hold of the writer lock: big enough to be cheap, small enough for
action responses (and pings) to slip in between batches."""
_CALL_ACTIONS: dict[str, str] = {
    "hangup": "Channel Hungup",
    "redirect": "Redirect successful",
    "sendtext": "Success",
    "userevent": "Event Sent",
}
"""Actions a compliance enforcer sends (with Asterisk's acknowledgements): accepted and
recorded, not carried out."""
_COMMANDS = {
    "Ping": "Keepalive command.  (Priv: <none>)",
    "CoreShowChannels": "List currently active channels.  (Priv: system,reporting,all)",
    "Hangup": "Hangup channel.  (Priv: system,call,all)",
    "Redirect": "Redirect (transfer) a call.  (Priv: call,all)",
    "SendText": "Sends a text message to channel.  (Priv: call,all)",
    "UserEvent": "Send an arbitrary event.  (Priv: user,all)",
    "PJSIPShowEndpoints": "Lists PJSIP endpoints.  (Priv: system,all)",
}
_LIST_ACTIONS: dict[str, tuple[str, str, str]] = {
    "coreshowchannels": ("Channels will follow", "CoreShowChannel", "CoreShowChannelsComplete"),
    "bridgelist": ("Bridge listing will follow", "BridgeListItem", "BridgeListComplete"),
    "queuestatus": ("Queue status will follow", "QueueMember", "QueueStatusComplete"),
    "pjsipshowendpoints": (
        "A listing of Endpoints follows, presented as EndpointList events",
        "EndpointList",
        "EndpointListComplete",
    ),
}


class _Pacer:
    """Turns recorded timestamps into delays: recorded gaps divided by ``speed``."""

    def __init__(self, speed: float | None) -> None:
        self._speed = speed
        self._origin: tuple[float, float] | None = None

    def delay(self, frame: RecordedFrame) -> float:
        if self._speed is None or frame.timestamp is None:
            return 0.0
        now = asyncio.get_running_loop().time()
        if self._origin is None:
            self._origin = (now, frame.timestamp)
        start, first = self._origin
        return start + (frame.timestamp - first) / self._speed - now


class ReplaySession:
    """One client: answers its actions and, once logged in, streams the capture's events."""

    def __init__(
        self, srv: AmiReplayServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._srv, self._reader, self._writer = srv, reader, writer
        self._codec = AmiCodec(expect_banner=False)
        self._lock = asyncio.Lock()  # a response must never land inside an event frame
        self._challenge: str | None = None
        self._authed = False

    async def run(self) -> None:
        srv = self._srv
        if not srv.stall_on_connect:
            banner = (srv.capture_for(len(srv.logins)) or srv.captures[-1]).banner
            await self._write(banner)
        if srv.stall_on_connect or srv.stall_after_banner:
            await self._discard_input()
            return
        async with asyncio.TaskGroup() as tg:
            stream: list[asyncio.Task[None]] = []
            try:
                await self._serve_actions(tg, stream)
            finally:
                for task in stream:
                    task.cancel()

    async def _discard_input(self) -> None:
        """Swallow what the client sends until it hangs up: a pbx frozen after accept()."""
        with contextlib.suppress(OSError):
            while await self._reader.read(_READ_SIZE):
                pass

    async def _serve_actions(self, tg: asyncio.TaskGroup, stream: list[asyncio.Task[None]]) -> None:
        while True:
            try:
                data = await self._reader.read(_READ_SIZE)
            except OSError:
                return
            if not data:
                return
            try:
                messages = self._codec.feed(data)
            except AmiProtocolError as err:
                await self._respond("Error", None, Message=str(err))
                return
            for message in messages:
                if not isinstance(message, Message):
                    continue  # expect_banner=False: the codec yields Messages only
                capture = await self._handle(message)
                if capture is False:
                    return
                if isinstance(capture, Capture):
                    stream.append(tg.create_task(self._stream_events(capture)))

    async def _handle(self, message: Message) -> Capture | bool:
        """Answer one action; False closes the connection, a Capture starts streaming it."""
        headers = {key.lower(): value for key, value in message.headers.items()}
        action_id = headers.get("actionid")
        action = message.name.strip().lower()
        if action not in ("login", "challenge"):
            # Login carries the secret; nothing a test asserts on needs it kept around.
            self._srv.actions_received.append(message)
        if message.kind.lower() != "action":
            await self._respond("Error", action_id, Message="Missing action in request")
        elif action == "logoff":
            await self._respond("Goodbye", action_id, Message="Thanks for all the fish.")
            return False
        elif action == "challenge":
            await self._answer_challenge(headers, action_id)
        elif action == "login":
            return await self._login(headers, action_id)
        elif not self._authed:
            await self._respond("Error", action_id, Message="Permission denied")
        elif action == "ping":
            if not self._srv.ignore_pings:
                await self._respond(
                    "Success", action_id, Ping="Pong", Timestamp=f"{time.time():.6f}"
                )
        elif action in _CALL_ACTIONS:
            await self._respond("Success", action_id, Message=_CALL_ACTIONS[action])
        elif action in _LIST_ACTIONS:
            await self._answer_list(message.name, _LIST_ACTIONS[action], action_id)
        elif action == "listcommands":
            # Like Asterisk: the actions this user may run, each with its privilege classes.
            await self._respond("Success", action_id, **_COMMANDS)
        else:
            await self._respond("Error", action_id, Message="Invalid/unknown command")
        return True

    async def _answer_challenge(self, headers: Mapping[str, str], action_id: str | None) -> None:
        if headers.get("authtype", "").lower() != "md5":
            await self._respond("Error", action_id, Message="Must specify AuthType")
            return
        self._challenge = str(secrets.randbelow(10**9))
        await self._respond("Success", action_id, Challenge=self._challenge)

    async def _login(self, headers: Mapping[str, str], action_id: str | None) -> Capture | bool:
        kind = self._check_credentials(headers)
        if kind is None:
            await self._respond("Error", action_id, Message="Authentication failed")
            return False  # Asterisk drops the connection after a failed login
        if self._authed:
            await self._respond("Success", action_id, Message="Already authenticated")
            return True
        self._authed = True
        capture = self._srv.capture_for(len(self._srv.logins))
        self._srv.logins.append(kind)
        if capture is not None and action_id is None:
            await self._write(capture.login_response)  # verbatim: the whole file replays exactly
        else:
            await self._respond("Success", action_id, Message="Authentication accepted")
        return capture if capture is not None else True

    def _check_credentials(self, headers: Mapping[str, str]) -> str | None:
        """``plain`` or ``md5`` when the credentials are right, else None."""
        srv = self._srv
        if headers.get("username") != srv.username:
            return None
        if headers.get("authtype", "plain").lower() == "md5":
            if self._challenge is None:
                return None
            key = (self._challenge + srv.secret).encode()
            expected = hashlib.md5(key, usedforsecurity=False).hexdigest()
            given = headers.get("key", "").lower()
            return "md5" if hmac.compare_digest(expected.encode(), given.encode()) else None
        given = headers.get("secret", "")
        return "plain" if hmac.compare_digest(given.encode(), srv.secret.encode()) else None

    async def _answer_list(
        self, name: str, spec: tuple[str, str, str], action_id: str | None
    ) -> None:
        message, item_event, complete_event = spec
        tag = {} if action_id is None else {"ActionID": action_id}
        frames = [
            encode_message("Response", "Success", {**tag, "EventList": "start", "Message": message})
        ]
        count = 0
        for item in self._srv.list_items(name):
            fields = {k: v for k, v in item.items() if k not in ("Event", "ActionID")}
            frames.append(encode_message("Event", item.get("Event", item_event), {**tag, **fields}))
            count += 1
        done = {**tag, "EventList": "Complete", "ListItems": str(count)}
        frames.append(encode_message("Event", complete_event, done))
        await self._write(b"".join(frames))

    async def _respond(self, result: str, action_id: str | None, **fields: str) -> None:
        headers = {} if action_id is None else {"ActionID": action_id}
        await self._write(encode_message("Response", result, {**headers, **fields}))

    async def _stream_events(self, capture: Capture) -> None:
        while True:
            await self._play(capture.events)
            if not self._srv.loop or not capture.events or self._writer.is_closing():
                break
        if self._srv.close_after_stream:
            # Like a dying pbx: the client sees EOF, and so does our action reader.
            self._writer.close()

    async def _play(self, events: Sequence[RecordedFrame]) -> None:
        pacer = _Pacer(self._srv.speed)
        batch: list[bytes] = []
        size = 0
        offset = self._retime_offset(events)
        for frame in events:
            delay = pacer.delay(frame)
            if delay > 0 or size >= _BATCH_BYTES:
                await self._send_events(batch)
                batch, size = [], 0
            if delay > 0:
                await asyncio.sleep(delay)
            if self._writer.is_closing():
                return
            raw = frame.raw if offset is None else retime_frame(frame.raw, offset)
            batch.append(raw)
            size += len(raw)
        await self._send_events(batch)

    def _retime_offset(self, events: Sequence[RecordedFrame]) -> float | None:
        if not self._srv.retime:
            return None
        first = next((f.timestamp for f in events if f.timestamp is not None), None)
        return None if first is None else time.time() - first

    async def _send_events(self, batch: list[bytes]) -> None:
        if not batch:
            return
        data = b"".join(batch)
        chunking = self._srv.chunking
        async with self._lock:
            if chunking is None:
                await self._write_locked(data)
            else:
                for piece in chunking(data):
                    if not await self._write_locked(piece):
                        break
                    await asyncio.sleep(0)  # give the peer a chance to read each piece alone
        # drain() only yields once the kernel buffers are full (megabytes on loopback): yield
        # here so actions are answered, and a local client reads, while a capture streams.
        await asyncio.sleep(0)

    async def _write(self, data: bytes) -> None:
        async with self._lock:
            await self._write_locked(data)

    async def _write_locked(self, data: bytes) -> bool:
        """Write and respect backpressure; False (and the link aborted) if the peer is gone."""
        if self._writer.is_closing():
            return False
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError:
            self._writer.transport.abort()  # the action reader then sees EOF and ends the session
            return False
        return True
