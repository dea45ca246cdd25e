"""The soak's two child processes: ``ctid simulate`` (the PBX) and ``ctid run`` (the daemon).

Each is the real command in its own process, so the daemon's RSS and CPU time are its own.
Their output goes to files in the work directory (a full pipe would stall them); the soak
reads those files for the ports they listen on and for the simulator's "all sent" line.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError
from bench.soak.floor import FloorSpec

PBX_NAME = "sim"
SECRET_ENV = "CTID_SIM_SECRET"
START_TIMEOUT_S = 120.0
"""Planning and writing the truth of a 10-minute floor takes a few seconds; a busy machine more."""
STOP_TIMEOUT_S = 60.0
_PORT_LINE = re.compile(r"(?m)^port = ([0-9]+)$")
_ALL_SENT = "simulate: all calls sent"


def child_environment(secret: str) -> dict[str, str]:
    """This environment without ``CTID_*`` overrides (they would win over the soak's config)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTID_")}
    env[SECRET_ENV] = secret
    return env


def new_secret() -> str:
    return secrets.token_hex(8)


class Child:
    """A process started by the soak, with its output in one file."""

    def __init__(self, name: str, command: list[str], output: Path, env: dict[str, str]) -> None:
        self.name, self.output = name, output
        with output.open("wb") as sink:
            self.process = subprocess.Popen(
                command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=output.parent
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.output.read_text("utf-8", errors="replace")

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise BenchError(f"{self.name} exited with code {code}: {self.last_line()}")

    def last_line(self) -> str:
        lines = [line for line in self.text().splitlines() if line.strip()]
        return lines[-1][:300] if lines else "(no output)"

    def stop(self, sig: signal.Signals) -> int:
        """Send ``sig`` and wait; killed (and an error) if it does not end in time."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(f"{self.name} did not stop within {STOP_TIMEOUT_S:g} s") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def wait_for(self, what: str, found: Callable[[str], str | None]) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = found(self.text())
            if match is not None:
                return match
            self.check_alive()
            time.sleep(0.1)
        raise BenchError(f"{self.name} did not report {what} within {START_TIMEOUT_S:g} s")


@dataclass
class Simulator:
    child: Child
    port: int
    truth: Path

    def all_sent(self) -> bool:
        return _ALL_SENT in self.child.text()


@dataclass
class Daemon:
    child: Child
    http_port: int
    database: Path
    spool: Path


def start_simulator(workdir: Path, floor: FloorSpec, secret: str) -> Simulator:
    truth = workdir / "truth.json"
    command = [
        sys.executable,
        "-m",
        "ctid",
        "simulate",
        *floor.simulate_args(),
        "--port",
        "0",
        "--truth",
        str(truth),
    ]
    child = Child("ctid simulate", command, workdir / "simulate.log", child_environment(secret))
    port = child.wait_for("its port", lambda text: _first(_PORT_LINE, text))
    return Simulator(child, int(port), truth)


def daemon_config(pbx_port: int, store_dir: Path) -> str:
    """A config with one PBX (the simulator), SQLite in ``store_dir``, metrics on a free port.

    Seats are not listed: every seat the PBX shows is tracked (the simulator's 1001..).
    """
    return "\n".join(
        [
            "[site]",
            'name = "soak"',
            'timezone = "UTC"',
            "",
            "[[pbx]]",
            f'name = "{PBX_NAME}"',
            'host = "127.0.0.1"',
            f"port = {pbx_port}",
            'username = "ctid"',
            f'secret_env = "{SECRET_ENV}"',
            'auth = "md5"',
            'trunks = ["carrier"]',
            "",
            "[http]",
            'host = "127.0.0.1"',
            "port = 0",
            "",
            "[store]",
            f"data_dir = {json.dumps(str(store_dir))}",
            "",
            "[log]",
            'format = "json"',
            "",
        ]
    )


def start_daemon(workdir: Path, pbx_port: int, secret: str) -> Daemon:
    store_dir = workdir / "store"
    config = workdir / "ctid.toml"
    config.write_text(daemon_config(pbx_port, store_dir), "utf-8")
    command = [sys.executable, "-m", "ctid", "run", "--config", str(config)]
    child = Child("ctid run", command, workdir / "daemon.log", child_environment(secret))
    port = child.wait_for("its HTTP port", _http_port)
    return Daemon(child, int(port), store_dir / "ctid.db", store_dir / "store-spool.jsonl")


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return None if match is None else match.group(1)


def _http_port(log: str) -> str | None:
    for line in log.splitlines():
        if '"http_listening"' in line:
            url = str(json.loads(line)["url"])
            return url.rsplit(":", 1)[1].split("/", 1)[0]
    return None


def log_levels(log: str) -> dict[str, int]:
    """How many JSON log lines the daemon wrote at each level (warnings are worth a look)."""
    levels: dict[str, int] = {}
    for line in log.splitlines():
        try:
            level = str(json.loads(line).get("level", "?"))
        except (ValueError, AttributeError):
            level = "not json"  # a traceback, or anything printed outside structlog
        levels[level] = levels.get(level, 0) + 1
    return levels
