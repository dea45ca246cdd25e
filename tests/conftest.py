"""Shared test set-up.

PostgreSQL is the one at 127.0.0.1:5432 (user postgres, trust auth; scripts/ensure-postgres.sh
sets one up), or the server URL in ``CTID_TEST_POSTGRES``; when none answers, the tests using
it are skipped with the reason. Each session gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

PG_SERVER = os.environ.get("CTID_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")


def _admin_engine() -> Engine:
    return create_engine(
        f"{PG_SERVER}/postgres",
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    admin = _admin_engine()
    name = f"ctid_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as err:
        admin.dispose()
        reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        pytest.skip(
            f"PostgreSQL not reachable at {PG_SERVER} ({reason}); "
            "run scripts/ensure-postgres.sh as root"
        )
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session database with an empty ``public`` schema: as good as a new database."""
    engine = create_engine(pg_database)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    return pg_database


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
