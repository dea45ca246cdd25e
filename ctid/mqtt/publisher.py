"""MQTT publisher: a bounded queue drained to the broker, reconnecting with jittered backoff.

``offer()`` never blocks the event loop: a full queue drops the new message and counts it.
``run()`` owns the connection (one task in the daemon's TaskGroup).  QoS 1 by default: a message
taken off the queue is retried after a reconnect until the broker acknowledges it, so a broker
restart loses nothing that was queued (at-least-once; subscribers may see a duplicate).

On every (re)connect the publisher subscribes to the topics handlers were registered for with
:meth:`MqttPublisher.subscribe` (the session is clean: a restarted broker has forgotten them),
announces ``<prefix>/<site>/status`` = ``online`` (retained; the broker publishes the will,
``offline``, if ctid vanishes) and calls ``on_connected`` so the feeds can republish retained
messages a restarted broker has forgotten.  ``online`` comes after the subscriptions, so a
client that sees it can send commands.  Handlers run on the event loop, one message at a time;
one that raises is logged and the next message is read all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from ctid.ami.backoff import backoff_delay
from ctid.mqtt.settings import MqttSettings
from ctid.mqtt.tls import tls_context

log = structlog.get_logger("ctid.mqtt")


DISCONNECT_TIMEOUT_S = 2.0
"""A stop waits this long for the broker's goodbye: well inside systemd's stop timeout."""
INCOMING_BACKLOG = 1000
"""Received messages waiting for their handler; beyond it the client library drops them."""
SUBSCRIBE_REFUSED = 0x80
"""The SUBACK code of a subscription the broker refused (its ACL, usually)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    payload: bytes
    retain: bool


Handler = Callable[[Incoming], None]


class MqttPublisher:
    def __init__(
        self,
        settings: MqttSettings,
        site: str,
        registry: CollectorRegistry,
        *,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.base = f"{settings.topic_prefix}/{site}"
        self._tls = tls_context(settings)
        self.on_connected = on_connected
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=settings.queue_size)
        self._pending: Outgoing | None = None
        """Taken off the queue but not yet acknowledged: sent first after a reconnect."""
        self._connected = Gauge(
            "ctid_mqtt_connected", "1 while connected to the MQTT broker", registry=registry
        )
        self._published = Counter(
            "ctid_mqtt_messages_published",
            "Messages the MQTT broker acknowledged (or accepted, at QoS 0)",
            registry=registry,
        )
        self._dropped = Counter(
            "ctid_mqtt_messages_dropped",
            "Messages dropped because the outgoing queue was full",
            registry=registry,
        )
        self._reconnects = Counter(
            "ctid_mqtt_reconnects",
            "Times the MQTT connection was re-established",
            registry=registry,
        )
        self._was_ever_up = False
        self._subscriptions: list[tuple[str, Handler]] = []
        self._handler_failures: set[str] = set()
        self.dropped = 0
        self.published = 0

    # --- producer side (event loop, never blocks) -------------------------------------

    def offer(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> bool:
        """Queue a JSON message for ``<prefix>/<site>/<topic>``; False if it was dropped."""
        return self.offer_to(f"{self.base}/{topic}", payload, retain=retain)

    def offer_to(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> bool:
        """:meth:`offer` to a full topic (a command's ``reply_to``)."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            self._queue.put_nowait(Outgoing(topic, body, retain))
        except asyncio.QueueFull:
            self._dropped.inc()
            self.dropped += 1
            return False
        return True

    def depth(self) -> int:
        return self._queue.qsize() + (self._pending is not None)

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Hand messages on ``<prefix>/<site>/<topic>`` (wildcards allowed) to ``handler``.

        Register before :meth:`run`; the subscription is renewed on every reconnect.
        """
        self._subscriptions.append((f"{self.base}/{topic}", handler))

    # --- connection -------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, drain, and on any broker failure wait (backoff) and start again."""
        attempt = 0
        unavailable = False
        s = self.settings
        while True:
            try:
                async with bounded_session(self._client(), DISCONNECT_TIMEOUT_S) as client:
                    await self._subscribe(client)
                    self._up()
                    unavailable, attempt = False, 0
                    await self._serve(client)
            except aiomqtt.MqttError as err:
                self._connected.set(0)
                if not unavailable:
                    # Logged once per outage, not once per retry.
                    log.warning("mqtt_unavailable", host=s.host, port=s.port, error=str(err))
                    unavailable = True
            delay = backoff_delay(attempt, initial=s.backoff_initial, maximum=s.backoff_max)
            attempt += 1
            await asyncio.sleep(delay)

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        status = f"{self.base}/status"
        return aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.client_id,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            keepalive=s.keepalive,
            timeout=s.publish_timeout,
            will=aiomqtt.Will(status, b"offline", qos=s.qos, retain=True),
            tls_context=self._tls,
            max_queued_incoming_messages=INCOMING_BACKLOG,
        )

    def _up(self) -> None:
        if self._was_ever_up:
            self._reconnects.inc()
        self._was_ever_up = True
        self._connected.set(1)
        log.info("mqtt_connected", host=self.settings.host, port=self.settings.port)
        if self.on_connected is not None:
            self.on_connected()

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        s = self.settings
        for topic, _ in self._subscriptions:
            granted = await client.subscribe(topic, qos=s.qos, timeout=s.publish_timeout)
            if any(code == SUBSCRIBE_REFUSED for code in granted):
                log.warning("mqtt_subscribe_refused", topic=topic, host=s.host)

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Drain the queue and, with subscriptions, read messages; until the link fails."""
        if not self._subscriptions:
            await self._drain(client)
            return
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._drain(client), name="mqtt-drain")
                tg.create_task(self._read(client), name="mqtt-read")
        except* aiomqtt.MqttError as failed:
            # One link failure, as without subscriptions: run() logs it and reconnects.
            raise failed.exceptions[0] from None

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            body = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
            incoming = Incoming(str(message.topic), body, bool(message.retain))
            for topic, handler in self._subscriptions:
                if message.topic.matches(topic):
                    self._handle(handler, incoming)

    def _handle(self, handler: Handler, incoming: Incoming) -> None:
        try:
            handler(incoming)
        except Exception as err:  # a handler's bug must not end the subscription
            kind = type(err).__name__
            if kind not in self._handler_failures:  # once per kind: a sender could repeat it
                self._handler_failures.add(kind)
                log.exception("mqtt_handler_failed", error=kind)

    async def _drain(self, client: aiomqtt.Client) -> None:
        qos, timeout = self.settings.qos, self.settings.publish_timeout
        # Straight away, not behind a backlog: subscribers learn ctid is back.
        await client.publish(
            f"{self.base}/status", b"online", qos=qos, retain=True, timeout=timeout
        )
        while True:
            if self._pending is None:
                self._pending = await self._queue.get()
            message = self._pending
            await client.publish(
                message.topic, message.payload, qos=qos, retain=message.retain, timeout=timeout
            )
            self._pending = None
            self._published.inc()
            self.published += 1
            _honour_cancellation()


@contextlib.asynccontextmanager
async def bounded_session(
    client: aiomqtt.Client, close_seconds: float
) -> AsyncIterator[aiomqtt.Client]:
    """``async with client``, but the disconnect waits at most ``close_seconds``.

    aiomqtt waits for the broker's goodbye without a limit; over TLS the closed connection
    can go unnoticed, and a shutdown would hang there.
    """
    await client.__aenter__()
    try:
        yield client
    finally:
        try:
            async with asyncio.timeout(close_seconds):
                await client.__aexit__(None, None, None)
        except TimeoutError:
            log.warning("mqtt_disconnect_timeout", seconds=close_seconds)


def _honour_cancellation() -> None:
    """Raise a cancellation that a publish swallowed.

    On Python 3.11 ``asyncio.wait_for`` (used inside aiomqtt) drops a cancel that arrives as
    the broker's acknowledgement does; the loop would then wait on the queue for ever and a
    shutdown would hang.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
