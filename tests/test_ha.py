"""Active/standby on the real PostgreSQL: the advisory lock, the daemon as standby and active,
stepping down when the lock's session dies, and the configuration that allows it.

PostgreSQL is the one at 127.0.0.1:5432 (or ``CTID_TEST_POSTGRES``, as in tests/store); when
none answers, the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, inspect, text
from structlog.testing import capture_logs

from ctid.cli import main
from ctid.config import Settings, load_settings
from ctid.daemon import Floor, run_daemon
from ctid.errors import ConfigError
from ctid.ha.leader import LeaderLock, LockLostError, Role
from ctid.ha.session import APPLICATION_NAME, connect_args, lock_engine, timeout_step
from ctid.ha.settings import DEFAULT_LOCK_KEY, HaSettings, is_postgres_url
from tests.truth import CAPTURES

DEMO = CAPTURES / "answered_customer_hangup.ami.gz"
FAST = {"retry_seconds": 0.1, "check_seconds": 0.2}


# --- pure parts ----------------------------------------------------------------------------


def test_default_lock_key_is_ctid_in_ascii_and_fits_a_bigint() -> None:
    assert DEFAULT_LOCK_KEY.to_bytes(4, "big") == b"ctid"
    assert HaSettings().lock_key == DEFAULT_LOCK_KEY
    assert HaSettings().enabled is False


def test_only_postgresql_urls_can_hold_the_lock() -> None:
    for good in ("postgresql://u@h/db", "postgres://h/db", "postgresql+psycopg://h/db"):
        assert is_postgres_url(good), good
    for bad in (None, "", "sqlite:///var/ctid.db", "mysql://h/db", "postgresqlx://h/db"):
        assert not is_postgres_url(bad), bad


def test_the_server_waits_longer_for_a_silent_peer_than_ctid_does() -> None:
    for check in (0.2, 1.0, 5.0, 7.5):
        args = connect_args(check)
        server = dict(item.removeprefix("-c ").split("=") for item in args["options"].split(" -c "))
        server_gives_up = int(server["tcp_keepalives_idle"]) + int(
            server["tcp_keepalives_interval"]
        ) * int(server["tcp_keepalives_count"])
        ctid_gives_up = check + timeout_step(check)  # one interval, then the check's timeout
        assert server_gives_up > ctid_gives_up
        assert args["tcp_user_timeout"] == timeout_step(check) * 1000


# --- configuration -------------------------------------------------------------------------


def test_ha_with_the_default_sqlite_store_is_refused_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "ctid.toml"
    config.write_text("[ha]\nenabled = true\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert message.startswith(f"{config}: ha: ")
    assert "PostgreSQL" in message
    assert "\n" not in message


def test_ctid_run_with_ha_on_sqlite_exits_2_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ctid.toml"
    config.write_text(
        f'[ha]\nenabled = true\n[store]\nurl = "sqlite:///{tmp_path / "ctid.db"}"\n',
        encoding="utf-8",
    )
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ctid: error: {config}: ha: ")
    assert "Traceback" not in err
    assert err.count("\n") == 1


def test_ha_with_a_postgresql_url_from_the_environment_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ctid.toml"
    config.write_text("[ha]\nenabled = true\nlock_key = -7\n", encoding="utf-8")
    monkeypatch.setenv("CTID_STORE__URL", "postgresql://ctid@db.example/ctid")
    settings = load_settings(config)
    assert settings.ha.enabled
    assert settings.ha.lock_key == -7


def test_ha_disabled_needs_no_postgresql() -> None:
    assert Settings(ha={"enabled": False}).ha.enabled is False


# --- PostgreSQL (pg_database, pg_url: tests/conftest.py) -----------------------------------


@pytest.fixture
def lock_key() -> int:
    return secrets.randbits(62)


def leader(url: str, key: int) -> LeaderLock:
    return LeaderLock.from_settings(HaSettings(enabled=True, lock_key=key, **FAST), url)


def terminate(url: str, pid: int) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            killed = connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            assert killed.scalar_one() is True
    finally:
        engine.dispose()


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 15
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def finished(task: asyncio.Task[Any]) -> None:
    """Cancel a task still running and wait for it (one that ended was awaited already)."""
    if task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# --- the lock ------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_second_instance_stays_standby_while_the_first_holds_the_lock(
    pg_database: str, lock_key: int
) -> None:
    async with leader(pg_database, lock_key) as first, leader(pg_database, lock_key) as second:
        with capture_logs() as logs:
            await first.acquire()
            waiting = asyncio.create_task(second.acquire())
            await until(lambda: any(e["event"] == "ha_standby" for e in logs), "ha_standby")
            await asyncio.sleep(10 * FAST["retry_seconds"])  # ten more attempts
            assert not waiting.done()
            await finished(waiting)
    assert (first.role, second.role) == (Role.ACTIVE, Role.STANDBY)
    # Logged once, not on every retry.
    assert [e["event"] for e in logs].count("ha_standby") == 1
    assert [e["event"] for e in logs].count("ha_active") == 1


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_closing_the_active_lets_the_standby_take_over(
    pg_database: str, lock_key: int
) -> None:
    async with leader(pg_database, lock_key) as second:
        first = leader(pg_database, lock_key)
        await first.acquire()
        waiting = asyncio.create_task(second.acquire())
        await asyncio.sleep(3 * FAST["retry_seconds"])
        assert not waiting.done()
        await first.close()
        await asyncio.wait_for(waiting, timeout=15)
        assert second.role is Role.ACTIVE


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_a_killed_lock_session_steps_the_active_down_before_the_standby_starts(
    pg_database: str, lock_key: int
) -> None:
    order: list[str] = []

    async def watching(lock: LeaderLock) -> None:
        with contextlib.suppress(LockLostError):
            await lock.watch()
            raise AssertionError("watch() ended without losing the lock")
        order.append("first stepped down")

    async def taking_over(lock: LeaderLock) -> None:
        await lock.acquire()
        order.append("second active")

    async with leader(pg_database, lock_key) as first, leader(pg_database, lock_key) as second:
        await first.acquire()
        pid = first.backend_pid
        assert pid is not None
        async with asyncio.TaskGroup() as tg:
            tg.create_task(watching(first))
            tg.create_task(taking_over(second))
            await asyncio.sleep(3 * FAST["retry_seconds"])
            assert order == []
            await asyncio.to_thread(terminate, pg_database, pid)
    assert order == ["first stepped down", "second active"]
    assert (first.role, second.role) == (Role.LOST, Role.ACTIVE)


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_the_lock_session_tells_the_server_to_drop_it_after_five_silent_steps(
    pg_database: str,
) -> None:
    engine = lock_engine(pg_database, check_seconds=5)
    try:
        with engine.connect() as connection:
            shown = {
                name: connection.execute(text(f"SHOW {name}")).scalar_one()
                for name in (
                    "tcp_keepalives_idle",
                    "tcp_keepalives_interval",
                    "tcp_keepalives_count",
                    "statement_timeout",
                    "application_name",
                )
            }
    finally:
        engine.dispose()
    assert shown == {
        "tcp_keepalives_idle": "10",
        "tcp_keepalives_interval": "5",
        "tcp_keepalives_count": "3",
        "statement_timeout": "5s",
        "application_name": APPLICATION_NAME,
    }


@pytest.mark.asyncio
async def test_standby_keeps_retrying_through_a_database_outage(lock_key: int) -> None:
    with socket.socket() as closed:  # a port nobody listens on: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql://ctid@127.0.0.1:{port}/ctid"
    with capture_logs() as logs:
        async with leader(url, lock_key) as lock:
            waiting = asyncio.create_task(lock.acquire())
            await until(
                lambda: sum(e["event"] == "ha_database_unavailable" for e in logs) > 0, "log"
            )
            await asyncio.sleep(5 * FAST["retry_seconds"])
            assert not waiting.done()
            await finished(waiting)
    assert [e["event"] for e in logs].count("ha_database_unavailable") == 1
    assert lock.role is Role.STANDBY


# --- the daemon ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ha_settings(url: str, key: int, port: int) -> Settings:
    return Settings(
        http={"port": port},
        demo={"capture": DEMO, "speed": 1000, "loop": False},
        store={"url": url},
        ha={"enabled": True, "lock_key": key, **FAST},
    )


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        body = await (response.json() if url.endswith("/healthz") else response.text())
        return response.status, body


def ha_active(metrics: str) -> float:
    (value,) = (
        s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "ctid_ha_active"
    )
    return value


def tables(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


Ready = asyncio.Future[tuple[Floor, int | None]]


@contextlib.asynccontextmanager
async def daemon(settings: Settings) -> AsyncIterator[tuple[asyncio.Task[None], Ready]]:
    ready: Ready = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_daemon(settings, handle_signals=False, on_ready=lambda f, p: ready.set_result((f, p)))
    )
    try:
        yield task, ready
    finally:
        await finished(task)


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_daemon_waits_as_standby_and_takes_over_when_the_lock_frees(
    pg_url: str, lock_key: int
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    holder = leader(pg_url, lock_key)
    await holder.acquire()
    try:
        async with daemon(ha_settings(pg_url, lock_key, port)) as (task, ready):
            status = 0
            while status != 200:
                await asyncio.sleep(0.05)
                assert not task.done()
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    status, health = await get(f"{base}/healthz")
            assert health == {"status": "standby", "ha": {"role": "standby", "lock_key": lock_key}}
            assert ha_active((await get(f"{base}/metrics"))[1]) == 0
            await asyncio.sleep(5 * FAST["retry_seconds"])
            assert not ready.done()
            # A standby does not even open the store.
            assert "calls" not in await asyncio.to_thread(tables, pg_url)
            await holder.close()
            floor, bound = await asyncio.wait_for(ready, timeout=20)
            assert bound == port  # the active serves where the standby did
            await until(lambda: floor.links[0].connected, "the demo PBX link")
            status, health = await get(f"{base}/healthz")
            assert status == 200
            assert health["ha"] == {"role": "active", "lock_key": lock_key}
            assert health["pbx"]["demo"]["connected"] is True
            assert ha_active((await get(f"{base}/metrics"))[1]) == 1
            assert "calls" in await asyncio.to_thread(tables, pg_url)
    finally:
        await holder.close()


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_active_daemon_stops_its_pbx_links_when_its_lock_session_dies(
    pg_url: str, lock_key: int
) -> None:
    settings = ha_settings(pg_url, lock_key, 0)
    async with daemon(settings) as (task, ready):
        floor, _port = await asyncio.wait_for(ready, timeout=20)
        await until(lambda: floor.links[0].connected, "the demo PBX link")
        await asyncio.to_thread(terminate, pg_url, await asyncio.to_thread(_lock_backend, pg_url))
        with pytest.raises(LockLostError, match="lost the database connection"):
            await asyncio.wait_for(task, timeout=15)
        assert not floor.links[0].connected


def _lock_backend(url: str) -> int:
    """The server process of the one ctid lock session on this test's database."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            query = text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            )
            (pid,) = connection.execute(query, {"name": APPLICATION_NAME}).scalars()
            return int(pid)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_ctid_run_exits_non_zero_with_one_line_when_it_loses_the_lock(
    pg_url: str, lock_key: int, tmp_path: Path
) -> None:
    port = _free_port()
    config = tmp_path / "ctid.toml"
    config.write_text(
        f'[demo]\ncapture = "{DEMO}"\nspeed = 1000\nloop = false\n'
        f"[http]\nport = {port}\n"
        f'[store]\nurl = "{pg_url}"\n'
        f"[ha]\nenabled = true\nlock_key = {lock_key}\nretry_seconds = 0.1\ncheck_seconds = 0.2\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "ctid", "run", "--config", str(config)],
        env={**os.environ, "CTID_LOG__FORMAT": "json"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not _active(port) and time.monotonic() < deadline:
            assert process.poll() is None
            time.sleep(0.1)
        terminate(pg_url, _lock_backend(pg_url))
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = err.decode().splitlines()
    assert process.returncode == 2
    assert lines[-1].startswith("ctid: error: ha: lost the database connection")
    assert any('"event": "ha_lost"' in line for line in lines)
    assert not any("Traceback" in line for line in lines)


@pytest.mark.postgres
def test_ctid_run_as_standby_is_ready_for_systemd_and_stops_cleanly_on_sigterm(
    pg_url: str, lock_key: int, tmp_path: Path
) -> None:
    notify, port = str(tmp_path / "notify"), _free_port()
    config = tmp_path / "ctid.toml"
    config.write_text(
        f'[demo]\ncapture = "{DEMO}"\nspeed = 1000\n[http]\nport = {port}\n'
        f'[store]\nurl = "{pg_url}"\n'
        f"[ha]\nenabled = true\nlock_key = {lock_key}\nretry_seconds = 0.1\n",
        encoding="utf-8",
    )
    holder = leader(pg_url, lock_key)
    asyncio.run(holder.acquire())
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(notify)
            sock.settimeout(30)
            process = subprocess.Popen(
                [sys.executable, "-m", "ctid", "run", "--config", str(config)],
                env={**os.environ, "NOTIFY_SOCKET": notify},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                assert sock.recv(4096) == b"READY=1\nSTATUS=standby"
                assert _healthz(port)["ha"]["role"] == "standby"
                time.sleep(0.5)  # a few attempts at the lock
                process.send_signal(signal.SIGTERM)
                _, err = process.communicate(timeout=30)
                assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    finally:
        asyncio.run(holder.close())
    assert process.returncode == 0, err.decode()
    assert b"ha_standby" in err
    assert b"stopping" in err
    assert b"ha_active" not in err


def _healthz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
        report: dict[str, Any] = json.loads(response.read())
        return report


def _active(port: int) -> bool:
    try:
        report = _healthz(port)
    except OSError:  # not listening yet, or 503 while the PBX link is not up
        return False
    return bool(report["ha"]["role"] == "active" and report.get("pbx"))
