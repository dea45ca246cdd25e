"""Helpers for the MQTT command, today and schema tests: an inbox under one prefix, a broker that
logs subscriptions, and leaving the shared broker without this run's retained messages."""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.test_mqtt import MOSQUITTO

SITE = "hq"
TOKEN = "mqtt-command-token"
WITHIN = 30.0
"""A hang guard: what the tests wait for is a message, never an amount of time."""


def mqtt_settings(prefix: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "port": port,
        "topic_prefix": prefix,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "state_interval": 0.05,
        **extra,
    }


def with_commands(prefix: str, port: int, **extra: Any) -> dict[str, Any]:
    return mqtt_settings(prefix, port, commands=True, command_token=TOKEN, **extra)


class Inbox:
    """Every message under ``<prefix>/hq/`` (and any extra topics subscribed), in order."""

    def __init__(self, client: aiomqtt.Client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.base = f"{prefix}/{SITE}/"
        self.messages: list[tuple[str, aiomqtt.Message]] = []

    async def open(self, *extra_topics: str) -> Inbox:
        await self.client.subscribe(f"{self.base}#", qos=1)
        for topic in extra_topics:
            await self.client.subscribe(topic, qos=1)
        return self

    def topics(self) -> set[str]:
        return {topic for topic, _ in self.messages}

    def bodies(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(_payload(m)) for t, m in self.messages if t == topic and _payload(m)]

    async def until(self, done: Callable[[], bool]) -> None:
        if done():
            return
        async with asyncio.timeout(WITHIN):
            async for message in self.client.messages:
                self.messages.append((str(message.topic).removeprefix(self.base), message))
                if done():
                    return

    async def online(self) -> None:
        """Until ctid says ``online``: its command subscription is in place by then."""
        await self.until(
            lambda: any(t == "status" and _payload(m) == b"online" for t, m in self.messages)
        )

    async def send(self, command: str, body: dict[str, Any], *, retain: bool = False) -> None:
        payload = json.dumps(body).encode()
        await self.client.publish(f"{self.base}command/{command}", payload, qos=1, retain=retain)

    async def ask(self, command: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send a request with its ``request_id`` and wait for the answer on the default topic."""
        topic = f"reply/{body['request_id']}"
        await self.send(command, body)
        await self.until(lambda: bool(self.bodies(topic)))
        return self.bodies(topic)[0]


def _payload(message: aiomqtt.Message) -> bytes:
    return message.payload if isinstance(message.payload, bytes) else b""


async def clear_prefix(host: str, port: int, prefix: str) -> None:
    """Clear every retained message under ``prefix/`` (the shared broker outlives the test).

    The retained messages arrive right after the subscription; a message this client publishes
    afterwards comes back after them, so it marks the end without any waiting.
    """
    marker = f"{prefix}/~end"
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(f"{prefix}/#", qos=1)
        await client.publish(marker, b"end", qos=1)
        retained: list[str] = []
        async with asyncio.timeout(WITHIN):
            async for message in client.messages:
                if str(message.topic) == marker:
                    break
                if message.retain and _payload(message):
                    retained.append(str(message.topic))
        for topic in retained:
            await client.publish(topic, b"", qos=1, retain=True)


def free_port() -> int:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port: int = spare.getsockname()[1]
    return port


def logged_broker_conf(tmp_path: Path) -> tuple[int, Path, Path]:
    """A private mosquitto's config that logs every SUBSCRIBE: (port, config, log file)."""
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed: run scripts/ensure-mosquitto.sh")
    port = free_port()
    log = tmp_path / "mosquitto.log"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        # As root mosquitto would drop to its own user, which cannot write into tmp_path.
        f"user {getpass.getuser()}\n"
        f"log_dest file {log}\nlog_type subscribe\n"
    )
    return port, conf, log


def subscriptions(log: Path, client_id: str) -> list[str]:
    """Topic filters ``client_id`` subscribed to, per the broker's log (one line each)."""
    if not log.exists():
        return []
    found = []
    for line in log.read_text().splitlines():
        _, _, rest = line.partition(": ")
        client, _, subscription = rest.partition(" ")
        if client == client_id:
            found.append(subscription.partition(" ")[2])
    return found
