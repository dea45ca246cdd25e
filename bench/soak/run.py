"""One soak: the simulated PBX and the daemon in their own processes, sampled until the stream
has been served and stored, then the daemon stopped and its store checked against the truth."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import BenchError
from bench.soak import probe
from bench.soak.check import Accounting, account, read_store
from bench.soak.floor import FloorSpec, PlannedFloor, check_same_plan, plan_floor
from bench.soak.processes import (
    PBX_NAME,
    Daemon,
    Simulator,
    log_levels,
    new_secret,
    start_daemon,
    start_simulator,
)

SETTLE_POLL_S = 0.5
SETTLE_QUIET_S = 2.0
"""The stream is read in full once the frame counter stands still this long (and nothing
waits for the database)."""
SETTLE_TIMEOUT_S = 300.0
DRAIN_ALLOWANCE_S = 600.0
"""The last calls of a floor end at most ~2.5 min after the last start (120 s extra talk)."""


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    """Seconds since the daemon was up (the stream starts at its login, right after)."""
    rss_kib: int
    daemon_cpu_s: float
    simulator_cpu_s: float
    machine_busy_s: float
    soak_cpu_s: float
    """This process's own CPU time (mostly parsing scrapes)."""
    counters: probe.DaemonCounters


@dataclass(frozen=True, slots=True)
class SoakRun:
    floor: FloorSpec
    planned: PlannedFloor
    samples: list[Sample]
    load_end_t: float
    """When the last call may start (``load_seconds / speed`` after ``t = 0``)."""
    settled_t: float
    peak_rss_kib: int
    log_levels: dict[str, int]
    spooled_rows: int
    accounting: Accounting


def run_soak(floor: FloorSpec, workdir: Path, sample_seconds: float) -> SoakRun:
    planned = plan_floor(floor)
    secret = new_secret()
    simulator = start_simulator(workdir, floor, secret)
    try:
        truth: dict[str, Any] = json.loads(simulator.truth.read_text("utf-8"))
        check_same_plan(planned, truth)
        daemon = start_daemon(workdir, simulator.port, secret)
        try:
            return _drive(floor, planned, simulator, daemon, truth, sample_seconds)
        finally:
            daemon.child.kill()
    finally:
        simulator.child.kill()


def _drive(
    floor: FloorSpec,
    planned: PlannedFloor,
    simulator: Simulator,
    daemon: Daemon,
    truth: dict[str, Any],
    sample_seconds: float,
) -> SoakRun:
    started = time.monotonic()
    deadline = started + planned.pbx_seconds / floor.speed + DRAIN_ALLOWANCE_S
    samples = _sample_until_sent(simulator, daemon, started, sample_seconds, deadline)
    settled = _settle(daemon) - started
    samples.append(_sample(simulator, daemon, started))
    peak = probe.rss_kib(daemon.child.pid, "VmHWM")
    exit_code = daemon.child.stop(signal.SIGTERM)  # the writer flushes what is left
    if exit_code != 0:
        raise BenchError(f"ctid run exited with code {exit_code}: {daemon.child.last_line()}")
    simulator.child.stop(signal.SIGINT)
    return SoakRun(
        floor=floor,
        planned=planned,
        samples=samples,
        load_end_t=floor.load_seconds / floor.speed,
        settled_t=settled,
        peak_rss_kib=peak,
        log_levels=log_levels(daemon.child.text()),
        spooled_rows=spooled_rows(daemon.spool),
        accounting=account(truth, read_store(daemon.database)),
    )


def _sample(simulator: Simulator, daemon: Daemon, started: float) -> Sample:
    counters = probe.scrape(daemon.http_port, PBX_NAME)
    return Sample(
        t=time.monotonic() - started,
        rss_kib=probe.rss_kib(daemon.child.pid),
        daemon_cpu_s=probe.cpu_seconds(daemon.child.pid),
        simulator_cpu_s=probe.cpu_seconds(simulator.child.pid),
        machine_busy_s=probe.machine_busy_seconds(),
        soak_cpu_s=time.process_time(),
        counters=counters,
    )


def _sample_until_sent(
    simulator: Simulator, daemon: Daemon, started: float, every: float, deadline: float
) -> list[Sample]:
    samples: list[Sample] = []
    due = started
    while not simulator.all_sent():
        daemon.child.check_alive()
        simulator.child.check_alive()
        if time.monotonic() > deadline:
            raise BenchError("the simulator did not send its whole stream in time")
        samples.append(_sample(simulator, daemon, started))
        due += every
        # A slow scrape must not bunch samples up: skip the slots it overran.
        while due <= time.monotonic():
            due += every
        time.sleep(max(0.0, due - time.monotonic()))
    return samples


def _settle(daemon: Daemon) -> float:
    """Wait until the daemon has read the whole stream and stored every row; returns when."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last_frames, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        daemon.child.check_alive()
        report = probe.healthz(daemon.http_port)
        frames = int(report["pbx"][PBX_NAME]["frames"])
        now = time.monotonic()
        if frames != last_frames:
            last_frames, quiet_since = frames, now
        elif now - quiet_since >= SETTLE_QUIET_S and report["store"]["backlog"] == 0:
            return quiet_since
        time.sleep(SETTLE_POLL_S)
    raise BenchError(f"the daemon did not catch up with the stream within {SETTLE_TIMEOUT_S:g} s")


def spooled_rows(path: Path) -> int:
    """Rows left in the writer's spool file (``<rows>\\t<json>`` per line); 0 when absent."""
    try:
        with path.open("rb") as spool:
            return sum(int(line.split(b"\t", 1)[0]) for line in spool if line.strip())
    except FileNotFoundError:
        return 0
