"""SIGTERM on a real `ctid run` process: clean exit, and every ended call reaches the store."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.truth import CAPTURES, load_truth


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _calls_ended(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return -1
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ctid_calls_total"
    )


def test_sigterm_flushes_every_ended_call_and_exits_cleanly(tmp_path: Path) -> None:
    expected = len(load_truth("mixed_busy_period")["expected"]["per_call"])
    port = _free_port()
    config = tmp_path / "ctid.toml"
    config.write_text(
        f'[demo]\ncapture = "{CAPTURES / "mixed_busy_period.ami.gz"}"\nspeed = 1000\n'
        f'loop = false\n[http]\nport = {port}\n[store]\ndata_dir = "{tmp_path / "var"}"\n'
        # Neither the timer nor a full batch flushes: only the shutdown can write the rows.
        "flush_ms = 600000\nbatch_rows = 1000000\n",
        encoding="utf-8",
    )
    # The environment would override the file's data_dir (tests/conftest.py sets it).
    env = {k: v for k, v in os.environ.items() if k != "CTID_STORE__DATA_DIR"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "ctid", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while _calls_ended(port) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _calls_ended(port) == expected
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0, err.decode()
    assert b"stopping" in err
    with sqlite3.connect(tmp_path / "var" / "ctid.db") as db:
        (stored,) = db.execute("select count(*) from calls").fetchone()
    assert stored == expected
