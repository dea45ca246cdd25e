"""MQTT live feed against a real Mosquitto (127.0.0.1:1883, ``scripts/ensure-mosquitto.sh``).

The broker restart test starts a private mosquitto on its own port and stops only that one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from ctid.ami.capture import load_capture
from ctid.ami.codec import parse_frame
from ctid.live.floor import LiveFloor
from ctid.live.seat_state import SeatState, SeatStatus
from ctid.metrics.floor import SeatLabels
from ctid.mqtt.feed import CallFeed, SeatStateFeed, topic_level
from ctid.mqtt.publisher import MqttPublisher
from ctid.mqtt.settings import MqttSettings
from ctid.pipeline import PbxPipeline
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker
from tests.conftest import MQTT_BROKER, listening
from tests.truth import CAPTURES

BROKER = MQTT_BROKER
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


_listening = listening


def _settings(prefix: str, port: int = 1883, **extra: Any) -> MqttSettings:
    return MqttSettings(
        enabled=True,
        port=port,
        topic_prefix=prefix,
        backoff_initial=0.05,
        backoff_max=0.2,
        **extra,
    )


@contextlib.asynccontextmanager
async def running(publisher: MqttPublisher) -> AsyncIterator[None]:
    task = asyncio.create_task(publisher.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def receive(
    client: aiomqtt.Client, count: int, within: float = 10.0
) -> list[aiomqtt.Message]:
    out: list[aiomqtt.Message] = []
    async with asyncio.timeout(within):
        async for message in client.messages:
            out.append(message)
            if len(out) == count:
                break
    return out


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Poll ``condition``: the publisher exposes counts, not events, by design."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polling a plain counter
            await asyncio.sleep(0.02)


async def clear_retained(host: str, port: int, topics: list[str]) -> None:
    async with aiomqtt.Client(host, port) as client:
        for topic in topics:
            await client.publish(topic, b"", qos=1, retain=True)


def _body(message: aiomqtt.Message) -> dict[str, Any]:
    assert isinstance(message.payload, bytes)
    loaded: dict[str, Any] = json.loads(message.payload)
    return loaded


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_seat_state_is_retained_for_a_subscriber_that_comes_later(
    broker: tuple[str, int], prefix: str
) -> None:
    publisher = MqttPublisher(_settings(prefix), "hq", CollectorRegistry())
    states = {"1001": SeatStatus(SeatState.TALKING, 100.0), "10/2": SeatStatus(SeatState.IDLE, 5)}
    feed = SeatStateFeed(publisher, lambda now: states, {"1001": "red"}, clock=lambda: 200.0)
    assert feed.publish_changes() == 2
    assert feed.publish_changes() == 0  # nothing changed, nothing sent
    topics = [f"{prefix}/hq/seat/1001/state", f"{prefix}/hq/seat/{topic_level('10/2')}/state"]
    try:
        async with running(publisher):
            await until(lambda: publisher.published == 2)
        async with aiomqtt.Client(*broker) as late:
            await late.subscribe(f"{prefix}/hq/seat/#", qos=1)
            got = {str(m.topic): (m.retain, _body(m)) for m in await receive(late, 2)}
        assert got[topics[0]] == (
            True,
            {"seat": "1001", "team": "red", "state": "talking", "since": 100.0},
        )
        assert got[topics[1]][1]["state"] == "idle"
    finally:
        await clear_retained(*broker, [*topics, f"{prefix}/hq/status"])


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_call_events_arrive_in_order_with_the_customer_number_masked(
    broker: tuple[str, int], prefix: str
) -> None:
    publisher = MqttPublisher(_settings(prefix), "hq", CollectorRegistry())
    feed = CallFeed(publisher, {"1001": "red"})
    tracker = CallTracker("pbx1", EndpointDirectory())
    pipeline = PbxPipeline(tracker, DailyTallies(ZoneInfo("UTC")), [feed])
    frames = load_capture(CAPTURES / "answered_customer_hangup.ami.gz").events
    customer = b"7104012101"  # dialled in this capture
    assert any(customer in frame.raw for frame in frames)
    try:
        async with aiomqtt.Client(*broker) as sub:
            await sub.subscribe(f"{prefix}/hq/call/#", qos=1)
            async with running(publisher):
                for frame in frames:
                    batch = [parse_frame(frame.raw)]
                    pipeline.on_messages(batch, frame.timestamp or 0.0)
                    feed.after_batch(tracker, batch)
                messages = await receive(sub, 3)
    finally:
        await clear_retained(*broker, [f"{prefix}/hq/status"])
    assert [str(m.topic) for m in messages] == [
        f"{prefix}/hq/call/started",
        f"{prefix}/hq/call/answered",
        f"{prefix}/hq/call/ended",
    ]
    ended = _body(messages[2])
    assert ended["number"] == "710*****01"
    assert ended["seat"] == "1001"
    assert ended["team"] == "red"
    assert ended["outcome"] == "answered"
    assert ended["talk_seconds"] == pytest.approx(12.022, abs=0.01)
    assert all(isinstance(m.payload, bytes) and customer not in m.payload for m in messages)


def test_a_full_queue_drops_new_messages_and_counts_them() -> None:
    registry = CollectorRegistry()

    async def scenario() -> MqttPublisher:
        publisher = MqttPublisher(_settings("p", queue_size=2), "hq", registry)
        results = [publisher.offer("call/ended", {"n": i}) for i in range(5)]
        assert results == [True, True, False, False, False]
        return publisher

    publisher = asyncio.run(scenario())
    assert publisher.dropped == 3
    assert publisher.depth() == 2
    assert registry.get_sample_value("ctid_mqtt_messages_dropped_total") == 3


@pytest.mark.asyncio
async def test_an_unreachable_broker_is_logged_once_and_messages_wait() -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]  # closed again: nothing listens there
    registry = CollectorRegistry()
    publisher = MqttPublisher(_settings("p", port=port), "hq", registry)
    publisher.offer("call/ended", {"n": 1})
    with capture_logs() as logs:
        async with running(publisher):
            await asyncio.sleep(1.0)  # several backoff rounds of 0.05-0.2 s
    assert [entry["event"] for entry in logs].count("mqtt_unavailable") == 1
    assert registry.get_sample_value("ctid_mqtt_connected") == 0
    assert publisher.depth() == 1


@pytest.fixture
def private_broker(tmp_path: Path) -> tuple[int, Path]:
    """A mosquitto of our own on a free port, so restarting it disturbs nobody."""
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed: run scripts/ensure-mosquitto.sh")
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    return port, conf


@contextlib.contextmanager
def mosquitto(port: int, conf: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            if _listening("127.0.0.1", port):
                break
            if process.poll() is not None:
                pytest.skip(f"private mosquitto exited with {process.returncode}")
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()  # only the process this test started
        process.wait(timeout=10)


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_messages_queued_while_the_broker_restarts_are_delivered_after(
    private_broker: tuple[int, Path],
) -> None:
    port, conf = private_broker
    registry = CollectorRegistry()
    publisher = MqttPublisher(_settings("r", port=port), "hq", registry)
    async with running(publisher):
        with mosquitto(port, conf):
            publisher.offer("call/ended", {"n": 0})
            await until(lambda: publisher.published == 1)
        for n in (1, 2, 3):  # broker down: these wait in the queue
            publisher.offer("call/ended", {"n": n})
        await asyncio.sleep(0.5)
        with mosquitto(port, conf):
            async with aiomqtt.Client("127.0.0.1", port) as sub:
                await sub.subscribe("r/hq/call/#", qos=1)
                got = [_body(m)["n"] for m in await receive(sub, 3, within=15)]
    assert got == [1, 2, 3]
    assert publisher.dropped == 0
    assert registry.get_sample_value("ctid_mqtt_reconnects_total") == 1


class _Link:
    def __init__(self, pipeline: PbxPipeline) -> None:
        self.pipeline = pipeline

    def pbx_now(self, local_now: float) -> float:
        return local_now


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_live_floor_publishes_seat_states_and_calls_of_a_replay(
    broker: tuple[str, int], prefix: str
) -> None:
    links: list[_Link] = []
    frames = load_capture(CAPTURES / "answered_customer_hangup.ami.gz").events
    end = max(frame.timestamp or 0.0 for frame in frames)
    tallies = DailyTallies(ZoneInfo("UTC"))
    live = LiveFloor(
        site="hq",
        seats={"1001": SeatLabels("red")},
        tallies=tallies,
        registry=CollectorRegistry(),
        links=lambda: links,
        directory=EndpointDirectory(),
        mqtt=_settings(prefix, state_interval=0.05),
        wrap_up_seconds=60.0,
        clock=lambda: end + 1,
    )
    links.append(_Link(PbxPipeline(CallTracker("pbx1", EndpointDirectory()), tallies, live.sinks)))
    state_topic = f"{prefix}/hq/seat/1001/state"
    try:
        async with aiomqtt.Client(*broker) as sub:
            await sub.subscribe(f"{prefix}/hq/#", qos=1)
            task = asyncio.create_task(live.run())
            try:
                for frame in frames:
                    batch = [parse_frame(frame.raw)]
                    links[0].pipeline.on_messages(batch, frame.timestamp or 0.0)
                    live.on_batch(links[0], batch, frame.timestamp or 0.0)
                got: dict[str, dict[str, Any]] = {}
                async with asyncio.timeout(10):
                    async for message in sub.messages:
                        if isinstance(message.payload, bytes) and message.payload != b"online":
                            got[str(message.topic)] = _body(message)
                        if state_topic in got and f"{prefix}/hq/call/ended" in got:
                            break
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await clear_retained(*broker, [state_topic, f"{prefix}/hq/status"])
    assert got[state_topic]["state"] == "wrap_up"
    assert got[f"{prefix}/hq/call/ended"]["seat"] == "1001"
