"""Shared test set-up."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

MQTT_BROKER = ("127.0.0.1", 1883)


def listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A daemon started by a test keeps its SQLite store under the test's own directory, so no
    # run restores another run's calls into today's tallies.
    monkeypatch.setenv("CTID_STORE__DATA_DIR", str(tmp_path / "store"))


@pytest.fixture
def broker() -> tuple[str, int]:
    """The shared Mosquitto, or a visible skip."""
    if not listening(*MQTT_BROKER):
        pytest.skip("no MQTT broker on 127.0.0.1:1883: run scripts/ensure-mosquitto.sh")
    return MQTT_BROKER


@pytest.fixture
def prefix() -> str:
    # Each test has topics of its own on the shared broker.
    return f"ctid-test-{uuid.uuid4().hex[:12]}"
