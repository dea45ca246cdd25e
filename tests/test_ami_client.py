"""The AMI client against the replay server (and one hand-written server) over real TCP."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ctid.ami.backoff import backoff_delay
from ctid.ami.capture import Capture, load_capture
from ctid.ami.client import AmiClient, AmiSession
from ctid.ami.codec import AmiCodec, Message, encode_message
from ctid.ami.server import AmiReplayServer
from ctid.errors import AmiError

CAPTURES = Path(__file__).parent / "captures"
BUSY = load_capture(CAPTURES / "busy.ami.gz")


def decoded_events(capture: Capture) -> list[Message]:
    """The capture's events as one whole-file parse sees them."""
    messages = AmiCodec().feed(capture.to_bytes())
    return [m for m in messages if isinstance(m, Message) and m.is_event]


class Recorder:
    """Collects what the client's callbacks receive."""

    def __init__(self) -> None:
        self.events: list[Message] = []
        self.batches: list[tuple[list[Message], float]] = []
        self.disconnects: list[float] = []
        self.sessions: list[AmiSession] = []

    def on_messages(self, batch: list[Message], received: float) -> None:
        self.batches.append((batch, received))
        self.events.extend(batch)

    def on_disconnected(self, when: float) -> None:
        self.disconnects.append(when)

    async def on_connected(self, session: AmiSession) -> None:
        self.sessions.append(session)


def make_client(port: int, rec: Recorder, **options: Any) -> AmiClient:
    settings: dict[str, Any] = {
        "name": "lab",
        "host": "127.0.0.1",
        "port": port,
        "username": "ctid",
        "secret": "ctidsecret",
        "on_messages": rec.on_messages,
        "on_connected": rec.on_connected,
        "on_disconnected": rec.on_disconnected,
        "ping_interval": 5.0,
        "action_timeout": 1.0,
        "connect_timeout": 1.0,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
    }
    settings.update(options)
    return AmiClient(**settings)


@asynccontextmanager
async def running(client: AmiClient) -> AsyncIterator[AmiClient]:
    task = asyncio.create_task(client.run())
    try:
        yield client
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool], within: float = 3.0) -> None:
    """Poll: the client's state is plain attributes, not something with an Event to wait on."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


# --- backoff -----------------------------------------------------------------------------


def test_backoff_doubles_then_stays_at_the_cap() -> None:
    delays = [backoff_delay(n, initial=0.5, maximum=30.0, rng=lambda: 1.0) for n in range(10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert backoff_delay(10_000, initial=0.5, maximum=30.0, rng=lambda: 1.0) == 30.0


def test_backoff_is_full_jitter() -> None:
    assert backoff_delay(3, initial=0.5, maximum=30.0, rng=lambda: 0.25) == 1.0
    assert backoff_delay(3, initial=0.5, maximum=30.0, rng=lambda: 0.0) == 0.0
    rng = random.Random(7)
    samples = [backoff_delay(20, initial=0.5, maximum=30.0, rng=rng.random) for _ in range(200)]
    assert all(0 <= s < 30.0 for s in samples)
    assert min(samples) < 3 < 27 < max(samples)


# --- login -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_plain_login_delivers_every_event_in_order() -> None:
    rec = Recorder()
    async with AmiReplayServer(BUSY) as server:
        client = make_client(server.port, rec)
        async with running(client):
            await until(lambda: len(rec.events) == len(BUSY.events))
            assert client.connected
            assert rec.events == decoded_events(BUSY)
            assert client.frames == 1 + len(BUSY.events)  # the login response, then events
            assert len(rec.sessions) == 1
            assert server.logins == ["plain"]
    assert all(not m.is_response for m in rec.events)
    assert all(received > 1e9 for _, received in rec.batches)


@pytest.mark.asyncio
async def test_md5_login() -> None:
    rec = Recorder()
    async with AmiReplayServer(BUSY, secret="md5-only") as server:
        client = make_client(server.port, rec, secret="md5-only", auth="md5")
        async with running(client):
            await until(lambda: client.connected)
    assert server.logins == ["md5"]


@pytest.mark.asyncio
@pytest.mark.parametrize("auth", ["plain", "md5"])
async def test_wrong_secret_logs_once_and_keeps_retrying(auth: str) -> None:
    rec = Recorder()
    async with AmiReplayServer(BUSY) as server:
        client = make_client(server.port, rec, secret="wrong-secret", auth=auth)
        with capture_logs() as logs:
            async with running(client):
                await until(lambda: server.connections >= 4)
    failures = [e for e in logs if e["event"] == "ami_login_failed"]
    assert len(failures) == 1
    assert failures[0]["pbx"] == "lab"
    assert "Authentication failed" in failures[0]["reason"]
    assert "wrong-secret" not in repr(logs)
    assert not client.connected
    assert client.last_error is not None
    assert "refused" in client.last_error
    assert server.logins == []
    assert rec.sessions == []


# --- actions -----------------------------------------------------------------------------


@asynccontextmanager
async def reversing_server(batch: int) -> AsyncIterator[int]:
    """Accepts any login, then answers every ``batch`` actions in reverse order."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        codec = AmiCodec(expect_banner=False)
        waiting: list[Message] = []
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        try:
            while data := await reader.read(65536):
                for msg in codec.feed(data):
                    assert isinstance(msg, Message)
                    if msg.name == "Login":
                        reply = {"ActionID": msg.get("ActionID") or "", "Message": "ok"}
                        writer.write(encode_message("Response", "Success", reply))
                    else:
                        waiting.append(msg)
                if len(waiting) >= batch:
                    for msg in reversed(waiting):
                        echo = {
                            "ActionID": msg.get("ActionID") or "",
                            "Echo": msg.get("Echo") or "",
                        }
                        writer.write(encode_message("Response", "Success", echo))
                    waiting.clear()
                await writer.drain()
        except ConnectionResetError:
            pass  # the client dropped the link while answers were unread: how a test ends
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_concurrent_actions_are_matched_by_action_id() -> None:
    rec = Recorder()
    async with reversing_server(batch=8) as port:
        # A generous timeout: the server holds every answer until all 8 actions arrived, which
        # on a loaded 2-core machine can take longer than the usual 1 s.
        client = make_client(port, rec, on_connected=None, action_timeout=10.0)
        async with running(client):
            await until(lambda: client.connected)
            replies = await asyncio.gather(
                *(client.send_action("Echo", {"Echo": str(n)}) for n in range(8))
            )
    assert [r.get("Echo") for r in replies] == [str(n) for n in range(8)]
    assert len({r.get("ActionID") for r in replies}) == 8


def three_channels(action: str) -> Iterable[dict[str, str]]:
    if action != "CoreShowChannels":
        return []
    return [{"Channel": f"PJSIP/100{n}-0000000{n}", "CallerIDName": "张伟"} for n in range(3)]


@pytest.mark.asyncio
async def test_list_actions_complete_while_events_stream() -> None:
    rec = Recorder()
    capture = load_capture(CAPTURES / "mixed_busy_period.ami.gz")
    async with AmiReplayServer(capture, list_items=three_channels, chunk_size=4096) as server:
        # keep_events filters the stream, yet list items must still reach their action.
        client = make_client(server.port, rec, keep_events={"Hangup"})
        async with running(client):
            await until(lambda: bool(rec.events))  # the stream is flowing
            channels, bridges, pong = await asyncio.gather(
                client.send_list_action("CoreShowChannels"),
                client.send_list_action("BridgeList"),
                client.send_action("Ping"),
            )
    assert [c.get("Channel") for c in channels] == [f"PJSIP/100{n}-0000000{n}" for n in range(3)]
    assert {c.name for c in channels} == {"CoreShowChannel"}
    assert channels[0].get("CallerIDName") == "张伟"
    assert bridges == []
    assert pong.get("Ping") == "Pong"
    assert rec.events
    assert {m.name for m in rec.events} == {"Hangup"}  # no responses, no list events leaked
    assert all(m.get("ActionID") is None for m in rec.events)


@pytest.mark.asyncio
async def test_refused_list_action_raises() -> None:
    rec = Recorder()
    async with AmiReplayServer(BUSY) as server:
        client = make_client(server.port, rec)
        async with running(client):
            await until(lambda: client.connected)
            with pytest.raises(AmiError, match="Invalid/unknown command"):
                await client.send_list_action("NoSuchList")
            reply = await client.send_action("NoSuchAction")
            assert reply.name == "Error"


@pytest.mark.asyncio
async def test_on_connected_session_can_resync() -> None:
    results: list[list[Message]] = []

    async def resync(session: AmiSession) -> None:
        results.append(await session.send_list_action("CoreShowChannels"))

    rec = Recorder()
    async with AmiReplayServer(BUSY, list_items=three_channels) as server:
        client = make_client(server.port, rec, on_connected=resync)
        async with running(client):
            await until(lambda: bool(results))
    assert len(results[0]) == 3


@pytest.mark.asyncio
async def test_unanswered_action_times_out() -> None:
    rec = Recorder()
    async with AmiReplayServer(BUSY, ignore_pings=True) as server:
        client = make_client(server.port, rec)
        async with running(client):
            await until(lambda: client.connected)
            with pytest.raises(AmiError, match=r"no answer to Ping within 0\.05 s"):
                await client.send_action("Ping", timeout=0.05)
            assert client.connected  # an action's timeout alone does not drop the link


@pytest.mark.asyncio
async def test_pending_action_fails_when_the_link_drops() -> None:
    rec = Recorder()
    server = AmiReplayServer(BUSY, ignore_pings=True)
    await server.start()
    client = make_client(server.port, rec)
    async with running(client):
        await until(lambda: client.connected)
        pending = asyncio.create_task(client.send_action("Ping", timeout=5.0))
        await asyncio.sleep(0.05)
        await server.close()
        with pytest.raises(AmiError, match="lost"):
            await asyncio.wait_for(pending, 1.0)
        await until(lambda: not client.connected)
        assert len(rec.disconnects) == 1
        with pytest.raises(AmiError, match="not connected"):
            await client.send_action("Ping")


# --- faults and reconnects ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_unanswered_ping_drops_the_link_and_reconnects() -> None:
    rec = Recorder()
    async with AmiReplayServer(BUSY, ignore_pings=True) as server:
        client = make_client(server.port, rec, ping_interval=0.05, action_timeout=0.1)
        with capture_logs() as logs:
            async with running(client):
                await until(lambda: client.reconnects >= 1 and client.connected)
    assert rec.disconnects
    assert server.connections >= 2
    assert "no answer to Ping, nor anything else, within 0.1 s" in (client.last_error or "")
    names = [e["event"] for e in logs if e["log_level"] != "debug"]
    assert names[:3] == ["ami_connected", "ami_disconnected", "ami_connected"]


@pytest.mark.asyncio
async def test_a_pbx_still_streaming_is_alive_while_its_ping_answer_waits() -> None:
    # A daemon that fell behind a busy pbx reads the Ping's answer only after seconds of
    # events: as long as frames keep coming, the link stays up; silence then drops it.
    capture = load_capture(CAPTURES / "mixed_busy_period.ami.gz")
    expected = len(decoded_events(capture))
    rec = Recorder()
    async with AmiReplayServer(capture, speed=300, ignore_pings=True) as server:
        client = make_client(server.port, rec, ping_interval=0.05, action_timeout=0.25)
        async with running(client):
            await until(lambda: len(rec.events) >= expected, within=30)
            assert rec.disconnects == []  # ~2 s of stream, dozens of unanswered pings
            assert server.connections == 1
            await until(lambda: bool(rec.disconnects))
    assert "no answer to Ping, nor anything else, within 0.25 s" in (client.last_error or "")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("stall", "error"),
    [("stall_on_connect", "no AMI banner"), ("stall_after_banner", "no answer to Login")],
)
async def test_a_stalled_server_is_dead_and_retried(stall: str, error: str) -> None:
    rec = Recorder()
    options: dict[str, Any] = {stall: True}
    async with AmiReplayServer(BUSY, **options) as server:
        client = make_client(server.port, rec, connect_timeout=0.1, action_timeout=0.1)
        with capture_logs() as logs:
            async with running(client):
                await until(lambda: server.connections >= 3)
    assert not client.connected
    assert error in (client.last_error or "")
    assert [e["event"] for e in logs if e["log_level"] != "debug"] == ["ami_unavailable"]


@pytest.mark.asyncio
async def test_unreachable_pbx_is_logged_once() -> None:
    async with AmiReplayServer(BUSY) as server:
        port = server.port  # a port that was just free, now closed
    rec = Recorder()
    client = make_client(port, rec)
    with capture_logs() as logs:
        async with running(client):
            await asyncio.sleep(0.3)
    assert [e["event"] for e in logs if e["log_level"] != "debug"] == ["ami_unavailable"]
    assert sum(e["event"] == "ami_retry" for e in logs) >= 3


@pytest.mark.asyncio
async def test_reconnect_replays_the_second_part_after_a_crash() -> None:
    part1 = load_capture(CAPTURES / "pbx_crash_mid_call.ami.gz")
    part2 = load_capture(CAPTURES / "pbx_crash_mid_call.part2.ami.gz")
    expected = decoded_events(part1) + decoded_events(part2)
    rec = Recorder()
    async with AmiReplayServer([part1, part2], close_after_stream=True) as server:
        client = make_client(server.port, rec)
        async with running(client):
            # Part 2 ends with a close too; the third login finds an idle pbx and stays.
            await until(lambda: len(server.logins) == 3 and client.connected)
            await asyncio.sleep(0.05)
            assert client.connected
            assert client.reconnects == 2
    assert rec.events == expected
    assert len(rec.disconnects) == 2
    assert len(rec.sessions) == 3


# --- framing over TCP --------------------------------------------------------------------


def random_chunks(seed: int) -> Callable[[bytes], Iterable[bytes]]:
    rng = random.Random(seed)

    def cut(data: bytes) -> Iterable[bytes]:
        start = 0
        while start < len(data):
            size = rng.randint(1, 9)
            yield data[start : start + size]
            start += size

    return cut


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("name", "chunking", "chinese"),
    [
        ("no_answer", {"chunk_size": 1}, "李娜"),
        ("answered_customer_hangup", {"chunking": random_chunks(20251122)}, "张伟"),
    ],
)
async def test_tiny_chunks_decode_like_the_whole_file(
    name: str, chunking: dict[str, Any], chinese: str
) -> None:
    capture = load_capture(CAPTURES / f"{name}.ami.gz")
    rec = Recorder()
    async with AmiReplayServer(capture, **chunking) as server:
        client = make_client(server.port, rec)
        async with running(client):
            await until(lambda: len(rec.events) >= len(capture.events), within=8.0)
    assert rec.events == decoded_events(capture)
    assert len(rec.batches) > len(capture.events) // 2  # not a few big reads
    assert any(chinese in (m.get("CallerIDName") or "") for m in rec.events)
