"""systemd notifications: parsed from the environment, sent to a real AF_UNIX datagram socket by
the running daemon (in-process, and as a `ctid run` process stopped with SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ctid.config import Settings
from ctid.daemon import run_daemon
from ctid.sdnotify import SystemdNotifier, message, notify_address, watchdog_interval
from tests.truth import CAPTURES

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "systemd" / "ctid.service"


# --- the environment -----------------------------------------------------------------------


def test_notify_socket_names_a_path_or_the_abstract_namespace() -> None:
    assert notify_address({"NOTIFY_SOCKET": "/run/systemd/notify"}) == "/run/systemd/notify"
    assert notify_address({"NOTIFY_SOCKET": "@ctid/notify"}) == "\0ctid/notify"
    assert notify_address({}) is None
    assert notify_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None


def test_watchdog_pings_at_half_the_interval_systemd_asks_for() -> None:
    pid = os.getpid()
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid)}, pid) == 15.0


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"},  # meant for another process
    ],
)
def test_no_watchdog_unless_asked_for_this_process(environ: dict[str, str]) -> None:
    assert watchdog_interval(environ, os.getpid()) is None


def test_a_newline_in_a_status_cannot_start_a_new_field() -> None:
    assert message("READY=1", "STATUS=a\nWATCHDOG=1") == b"READY=1\nSTATUS=a WATCHDOG=1"


def test_without_a_notify_socket_there_is_no_watchdog_either() -> None:
    notifier = SystemdNotifier.from_environment({"WATCHDOG_USEC": "1000000"})
    assert notifier.address is None
    assert notifier.watchdog_seconds is None


# --- a real socket -------------------------------------------------------------------------


@contextlib.contextmanager
def listening(path: str) -> Iterator[socket.socket]:
    """A datagram socket like systemd's notify socket (a path, or abstract with a NUL)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.setblocking(False)
        yield sock


def pending(sock: socket.socket) -> list[bytes]:
    """Every datagram already queued on the socket."""
    out = []
    with contextlib.suppress(BlockingIOError):
        while True:
            out.append(sock.recv(4096))
    return out


async def receive(sock: socket.socket) -> bytes:
    async with asyncio.timeout(10):
        return await asyncio.get_running_loop().sock_recv(sock, 4096)


async def receive_until(sock: socket.socket, wanted: bytes) -> list[bytes]:
    """Datagrams up to and including the first one containing ``wanted``."""
    seen = [await receive(sock)]
    while wanted not in seen[-1]:
        seen.append(await receive(sock))
    return seen


@pytest.fixture
def socket_path(tmp_path: Path) -> str:
    path = str(tmp_path / "notify")
    if len(path) >= 100:  # sun_path holds 108 bytes
        pytest.skip(f"temporary path too long for an AF_UNIX socket: {path}")
    return path


def demo_settings() -> Settings:
    return Settings(
        http={"port": 0},
        demo={"capture": CAPTURES / "answered_customer_hangup.ami.gz", "speed": 1000},
        store={"enabled": False},
    )


@contextlib.asynccontextmanager
async def daemon(settings: Settings) -> AsyncIterator[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_daemon(settings, handle_signals=False, on_ready=lambda _f, _p: ready.set())
    )
    try:
        await asyncio.wait_for(ready.wait(), timeout=10)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.asyncio
async def test_daemon_notifies_ready_pings_the_watchdog_and_says_when_it_stops(
    socket_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", socket_path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a ping every 50 ms
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    with listening(socket_path) as sock:
        async with daemon(demo_settings()):
            before_ready = await receive_until(sock, b"READY=1")
            assert before_ready[-1] == b"READY=1\nSTATUS=active, 1 PBX link"
            pings = [await receive(sock) for _ in range(3)]
            assert pings == [b"WATCHDOG=1"] * 3
        after = pending(sock)
    assert b"STOPPING=1\nSTATUS=stopping" in after
    assert after.count(b"STOPPING=1\nSTATUS=stopping") == 1


@pytest.mark.asyncio
async def test_daemon_sends_nothing_without_a_notify_socket(
    socket_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    with listening(socket_path) as sock:
        async with daemon(demo_settings()):
            await asyncio.sleep(0.3)  # six watchdog periods, had there been a socket
        assert pending(sock) == []


@pytest.mark.asyncio
async def test_notifications_reach_an_abstract_socket() -> None:
    name = f"@ctid-test-{secrets.token_hex(8)}"
    with listening("\0" + name[1:]) as sock:
        notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": name})
        notifier.ready("standby")
        notifier.status("active, 2 PBX links")
        assert await receive(sock) == b"READY=1\nSTATUS=standby"
        assert await receive(sock) == b"STATUS=active, 2 PBX links"
        notifier.close()


@pytest.mark.asyncio
async def test_a_blocked_event_loop_sends_no_watchdog_pings(socket_path: str) -> None:
    with listening(socket_path) as sock:
        notifier = SystemdNotifier(notify_address({"NOTIFY_SOCKET": socket_path}), 0.02)
        async with notifier.watchdog():
            assert await receive(sock) == b"WATCHDOG=1"
            pending(sock)
            time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop is the point
            assert pending(sock) == []  # fifteen periods blocked, not one ping
            assert await receive(sock) == b"WATCHDOG=1"  # the loop turns again: pings resume
        notifier.close()


@pytest.mark.asyncio
async def test_a_missing_socket_is_logged_once_and_does_not_stop_the_daemon(
    tmp_path: Path,
) -> None:
    notifier = SystemdNotifier(str(tmp_path / "nobody-listens"), 0.01)
    with capture_logs() as logs:
        async with notifier.watchdog():
            notifier.ready("active, 1 PBX link")
            await asyncio.sleep(0.05)  # a few failing pings
        notifier.stopping()
        notifier.close()
    assert [e["event"] for e in logs] == ["sd_notify_failed"]


# --- `ctid run` under a pretend systemd ----------------------------------------------------


def test_ctid_run_notifies_systemd_and_stops_on_sigterm(socket_path: str, tmp_path: Path) -> None:
    config = tmp_path / "ctid.toml"
    config.write_text(
        f'[demo]\ncapture = "{CAPTURES / "answered_customer_hangup.ami.gz"}"\nspeed = 1000\n'
        "[http]\nport = 0\n[store]\nenabled = false\n",
        encoding="utf-8",
    )
    env = {**os.environ, "NOTIFY_SOCKET": socket_path, "WATCHDOG_USEC": "200000"}
    env.pop("WATCHDOG_PID", None)
    with listening(socket_path) as sock:
        sock.settimeout(30)
        process = subprocess.Popen(
            [sys.executable, "-m", "ctid", "run", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            received = [sock.recv(4096)]
            while b"READY=1" not in received[-1]:
                received.append(sock.recv(4096))
            assert sock.recv(4096) == b"WATCHDOG=1"
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
            sock.setblocking(False)
            after = pending(sock)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 0, err.decode()
    assert received[-1] == b"READY=1\nSTATUS=active, 1 PBX link"
    assert b"STOPPING=1\nSTATUS=stopping" in after


def test_systemd_unit_waits_for_ready_and_watches_the_event_loop() -> None:
    lines = set(UNIT.read_text(encoding="utf-8").splitlines())
    assert {"Type=notify", "NotifyAccess=main", "WatchdogSec=30s"} <= lines
    families = next(line for line in lines if line.startswith("RestrictAddressFamilies="))
    assert "AF_UNIX" in families.split("=", 1)[1].split()
