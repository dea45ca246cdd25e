"""The replay server over real TCP, driven by a hand-written raw client."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest

from ctid.ami.capture import Capture, load_capture, parse_capture
from ctid.ami.codec import AmiCodec, Banner, Message, encode_message
from ctid.ami.server import AmiReplayServer, fixed_chunks

CAPTURES = Path(__file__).parent / "captures"
BUSY = load_capture(CAPTURES / "busy.ami.gz")
CRASH = load_capture(CAPTURES / "pbx_crash_mid_call.ami.gz")
CRASH2 = load_capture(CAPTURES / "pbx_crash_mid_call.part2.ami.gz")
LOGIN = {"Username": "ctid", "Secret": "ctidsecret"}
SHORT = 1.0


def tiny_capture(*timestamps: float | None) -> Capture:
    frames = b"".join(
        b"Event: Tick\r\n" + (b"" if t is None else f"Timestamp: {t}\r\n".encode()) + b"\r\n"
        for t in timestamps
    )
    return parse_capture(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n\r\n" + frames)


class RawClient:
    """A bare AMI client: writes frames, reads and decodes with the codec."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.codec = AmiCodec()
        self.inbox: list[Message | Banner] = []

    async def send(self, name: str, headers: Mapping[str, str] | None = None) -> None:
        self.writer.write(encode_message("Action", name, headers))
        await self.writer.drain()

    async def next(self, within: float = SHORT) -> Message | Banner:
        async with asyncio.timeout(within):
            while not self.inbox:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError
                self.inbox.extend(self.codec.feed(data))
        return self.inbox.pop(0)

    async def message(self, within: float = SHORT) -> Message:
        item = await self.next(within)
        assert isinstance(item, Message)
        return item

    async def answer(self, action_id: str, within: float = SHORT) -> Message:
        """The next frame carrying ``action_id``, skipping streamed events."""
        while True:
            msg = await self.message(within)
            if msg.get("ActionID") == action_id:
                return msg

    async def read_to_eof(self, within: float = SHORT) -> bytes:
        async with asyncio.timeout(within):
            return await self.reader.read()


@asynccontextmanager
async def connect(server: AmiReplayServer) -> AsyncIterator[RawClient]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        yield RawClient(reader, writer)
    finally:
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()


async def logged_in(client: RawClient) -> None:
    assert isinstance(await client.next(), Banner)
    await client.send("Login", {**LOGIN, "ActionID": "login"})
    assert (await client.answer("login")).name == "Success"


@pytest.mark.asyncio
async def test_login_without_action_id_replays_the_file_byte_for_byte() -> None:
    async with (
        AmiReplayServer(BUSY, close_after_stream=True, chunk_size=997) as server,
        connect(server) as client,
    ):
        await client.send("Login", LOGIN)
        assert await client.read_to_eof() == BUSY.to_bytes()
        assert server.logins == ["plain"]


@pytest.mark.asyncio
async def test_one_byte_chunks_carry_the_same_bytes() -> None:
    capture = load_capture(CAPTURES / "seat_unregister_register.ami.gz")
    async with (
        AmiReplayServer(capture, close_after_stream=True, chunk_size=1) as server,
        connect(server) as client,
    ):
        await client.send("Login", LOGIN)
        assert await client.read_to_eof(within=5) == capture.to_bytes()


@pytest.mark.asyncio
async def test_login_response_echoes_action_id_and_events_follow() -> None:
    async with AmiReplayServer(BUSY) as server, connect(server) as client:
        assert await client.next() == Banner("11.0.0")
        await client.send("Login", {**LOGIN, "ActionID": "a1"})
        reply = await client.message()
        assert (reply.name, reply.get("ActionID")) == ("Success", "a1")
        assert reply.get("Message") == "Authentication accepted"
        first = await client.message()
        assert (first.kind, first.name) == ("Event", "FullyBooted")


@pytest.mark.asyncio
async def test_wrong_secret_is_refused_and_the_connection_closed() -> None:
    async with AmiReplayServer(BUSY) as server, connect(server) as client:
        await client.next()
        await client.send("Login", {"Username": "ctid", "Secret": "nope", "ActionID": "x"})
        reply = await client.message()
        assert (reply.name, reply.get("Message"), reply.get("ActionID")) == (
            "Error",
            "Authentication failed",
            "x",
        )
        assert await client.read_to_eof() == b""
        assert server.logins == []


@pytest.mark.asyncio
async def test_md5_challenge_login() -> None:
    async with AmiReplayServer(BUSY, secret="s3cret") as server, connect(server) as client:
        await client.next()
        await client.send("Challenge", {"AuthType": "MD5", "ActionID": "c"})
        challenge = (await client.answer("c")).get("Challenge")
        assert challenge
        assert challenge.isdigit()
        key = hashlib.md5((challenge + "s3cret").encode(), usedforsecurity=False).hexdigest()
        await client.send(
            "Login", {"Username": "ctid", "AuthType": "MD5", "Key": key, "ActionID": "l"}
        )
        assert (await client.answer("l")).name == "Success"
        assert server.logins == ["md5"]


@pytest.mark.asyncio
@pytest.mark.parametrize("challenged", [True, False])
async def test_md5_login_with_a_wrong_key_fails(challenged: bool) -> None:
    async with AmiReplayServer(BUSY) as server, connect(server) as client:
        await client.next()
        if challenged:
            await client.send("Challenge", {"AuthType": "MD5", "ActionID": "c"})
            await client.answer("c")
        await client.send(
            "Login", {"Username": "ctid", "AuthType": "MD5", "Key": "0" * 32, "ActionID": "l"}
        )
        assert (await client.answer("l")).get("Message") == "Authentication failed"


@pytest.mark.asyncio
async def test_actions_before_login_are_refused() -> None:
    async with AmiReplayServer(BUSY) as server, connect(server) as client:
        await client.next()
        await client.send("Ping", {"ActionID": "p"})
        reply = await client.answer("p")
        assert (reply.name, reply.get("Message")) == ("Error", "Permission denied")


@pytest.mark.asyncio
async def test_ping_and_unknown_action_echo_their_action_id() -> None:
    async with AmiReplayServer(BUSY) as server, connect(server) as client:
        await logged_in(client)
        await client.send("Ping", {"ActionID": "p1"})
        await client.send("Frobnicate", {"ActionID": "u1"})
        pong = await client.answer("p1")
        assert (pong.name, pong.get("Ping")) == ("Success", "Pong")
        assert float(pong.get("Timestamp") or "0") > 0
        unknown = await client.answer("u1")
        assert (unknown.name, unknown.get("Message")) == ("Error", "Invalid/unknown command")


def channels(action: str) -> Iterable[Mapping[str, str]]:
    if action != "CoreShowChannels":
        return []
    return [
        {"Channel": "PJSIP/1001-00000001", "CallerIDName": "张伟"},
        {"Channel": "PJSIP/carrier-00000002", "CallerIDName": ""},
    ]


@pytest.mark.asyncio
async def test_list_actions_send_items_then_complete() -> None:
    async with AmiReplayServer(BUSY, list_items=channels) as server, connect(server) as client:
        await logged_in(client)
        await client.send("CoreShowChannels", {"ActionID": "l1"})
        start = await client.answer("l1")
        assert (start.name, start.get("EventList")) == ("Success", "start")
        items = [await client.answer("l1"), await client.answer("l1")]
        assert [i.name for i in items] == ["CoreShowChannel", "CoreShowChannel"]
        assert items[0].get("CallerIDName") == "张伟"
        done = await client.answer("l1")
        assert (done.name, done.get("EventList"), done.get("ListItems")) == (
            "CoreShowChannelsComplete",
            "Complete",
            "2",
        )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("action", "complete"),
    [("BridgeList", "BridgeListComplete"), ("QueueStatus", "QueueStatusComplete")],
)
async def test_empty_list_actions_complete_with_zero_items(action: str, complete: str) -> None:
    async with AmiReplayServer(BUSY) as server, connect(server) as client:
        await logged_in(client)
        await client.send(action, {"ActionID": "l"})
        assert (await client.answer("l")).get("EventList") == "start"
        done = await client.answer("l")
        assert (done.name, done.get("ListItems")) == (complete, "0")


@pytest.mark.asyncio
async def test_logoff_says_goodbye_and_closes() -> None:
    async with AmiReplayServer(BUSY) as server, connect(server) as client:
        await client.next()
        await client.send("Logoff", {"ActionID": "bye"})
        assert (await client.answer("bye")).name == "Goodbye"
        assert await client.read_to_eof() == b""


@pytest.mark.asyncio
async def test_a_frame_that_is_not_an_action_gets_an_error() -> None:
    async with AmiReplayServer(BUSY) as server, connect(server) as client:
        await client.next()
        client.writer.write(b"Foo: bar\r\nActionID: f\r\n\r\n")
        reply = await client.answer("f")
        assert (reply.name, reply.get("Message")) == ("Error", "Missing action in request")
        await client.send("Login", {**LOGIN, "ActionID": "l"})
        assert (await client.answer("l")).name == "Success"  # the connection is still usable


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xfe no colon here\r\n\r\n", b"X" * 70_000],
    ids=["binary_line", "no_separator_within_frame_limit"],
)
async def test_garbage_gets_an_error_and_the_server_keeps_serving(garbage: bytes) -> None:
    async with AmiReplayServer(BUSY) as server:
        async with connect(server) as client:
            await client.next()
            client.writer.write(garbage)
            assert (await client.message()).name == "Error"
            assert await client.read_to_eof() == b""
        async with connect(server) as client:
            await logged_in(client)
        assert server.connections == 2


@pytest.mark.asyncio
async def test_successive_logins_get_successive_captures_then_idle() -> None:
    async with AmiReplayServer([CRASH, CRASH2], close_after_stream=True) as server:
        for capture in (CRASH, CRASH2):
            async with connect(server) as client:
                await client.send("Login", LOGIN)
                assert await client.read_to_eof() == capture.to_bytes()
        async with connect(server) as client:
            await logged_in(client)
            with pytest.raises(TimeoutError):
                await client.next(within=0.2)  # past the last capture: idle, link kept open
        assert server.logins == ["plain"] * 3


@pytest.mark.asyncio
async def test_speed_paces_events_by_their_timestamps() -> None:
    capture = tiny_capture(None, 100.0, 100.2, 100.4)
    async with AmiReplayServer(capture, speed=2.0) as server, connect(server) as client:
        await logged_in(client)
        loop = asyncio.get_running_loop()
        arrivals = []
        for _ in range(4):
            await client.message()
            arrivals.append(loop.time())
        assert arrivals[1] - arrivals[0] < 0.05  # untimed, then the first timed frame: at once
        assert 0.17 < arrivals[3] - arrivals[1] < 0.4  # 0.4 s recorded at twice the pace


@pytest.mark.asyncio
async def test_loop_restarts_the_capture() -> None:
    capture = tiny_capture(1.0, 2.0)
    async with AmiReplayServer(capture, loop=True) as server, connect(server) as client:
        await logged_in(client)
        names = [(await client.message()).name for _ in range(7)]
        assert names == ["Tick"] * 7


@pytest.mark.asyncio
async def test_stall_on_connect_sends_nothing() -> None:
    async with AmiReplayServer(BUSY, stall_on_connect=True) as server, connect(server) as client:
        await client.send("Login", LOGIN)
        with pytest.raises(TimeoutError):
            await client.next(within=0.2)


@pytest.mark.asyncio
async def test_stall_after_banner_answers_nothing() -> None:
    async with AmiReplayServer(BUSY, stall_after_banner=True) as server, connect(server) as client:
        assert isinstance(await client.next(), Banner)
        await client.send("Login", {**LOGIN, "ActionID": "l"})
        with pytest.raises(TimeoutError):
            await client.next(within=0.2)


@pytest.mark.asyncio
async def test_ignore_pings_leaves_pings_unanswered() -> None:
    async with (
        AmiReplayServer(tiny_capture(), ignore_pings=True) as server,
        connect(server) as client,
    ):
        await logged_in(client)
        await client.send("Ping", {"ActionID": "p"})
        await client.send("BridgeList", {"ActionID": "b"})
        assert (await client.message()).get("ActionID") == "b"  # the ping got nothing


@pytest.mark.asyncio
async def test_close_ends_live_connections() -> None:
    server = AmiReplayServer(load_capture(CAPTURES / "mixed_busy_period.ami.gz"), chunk_size=512)
    await server.start()
    async with connect(server) as client:
        await logged_in(client)
        await client.message()
        await server.close()
        async with asyncio.timeout(SHORT):
            while await client.reader.read(65536):
                pass
    await server.close()  # idempotent


def test_fixed_chunks_rejects_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        fixed_chunks(0)
    assert list(fixed_chunks(2)(b"abcde")) == [b"ab", b"cd", b"e"]
