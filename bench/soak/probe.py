"""What the soak reads while it runs: a process's RSS and CPU time from ``/proc``, the
machine's busy time, and the daemon's own counters from ``/metrics`` and ``/healthz``."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import BenchError

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
HTTP_TIMEOUT_S = 30.0
"""A scrape of a 5,000-seat floor renders megabytes; a busy 2-core machine can take a while."""
_WANTED = (b"ctid_ami_", b"ctid_store_", b"ctid_event_loop_lag_seconds")
_LAG_BUCKET = "ctid_event_loop_lag_seconds_bucket"


def rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    """Resident set size (or another ``Vm*`` line, e.g. ``VmHWM``) of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == field_name:
            return int(value.split()[0])
    raise ValueError(f"/proc/{pid}/status has no {field_name}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy (not idle, not waiting for I/O) since boot."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, first[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class DaemonCounters:
    """The daemon's health figures from one ``/metrics`` scrape (PBX ``sim``)."""

    frames: float
    events_applied: float
    connected: bool
    reconnects: float
    store_backlog: float
    rows_written: float
    rows_dropped: float
    rows_rejected: float
    lag_buckets: tuple[tuple[float, float], ...] = field(default=())
    """Cumulative ``(le, count)`` of ``ctid_event_loop_lag_seconds``, ``+Inf`` last."""
    lag_sum: float = 0.0


def parse_metrics(body: bytes, pbx: str) -> DaemonCounters:
    """Pick the few low-cardinality families out of a whole exposition (text format)."""
    values: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    label = f'{{pbx="{pbx}"}}'
    for raw in body.splitlines():
        if not raw.startswith(_WANTED):
            continue
        name, _, value = raw.decode().rpartition(" ")
        if name.startswith(_LAG_BUCKET):
            bound = name.split('le="', 1)[1].rstrip('"}')
            buckets.append((float(bound), float(value)))
        else:
            values[name.replace(label, "")] = float(value)
    try:
        return DaemonCounters(
            frames=values["ctid_ami_frames_total"],
            events_applied=values["ctid_ami_events_applied_total"],
            connected=values["ctid_ami_connected"] == 1.0,
            reconnects=values["ctid_ami_reconnects_total"],
            store_backlog=values["ctid_store_backlog_rows"],
            rows_written=values["ctid_store_rows_written_total"],
            rows_dropped=values["ctid_store_rows_dropped_total"],
            rows_rejected=values["ctid_store_rows_rejected_total"],
            lag_buckets=tuple(sorted(buckets)),
            lag_sum=values.get("ctid_event_loop_lag_seconds_sum", 0.0),
        )
    except KeyError as missing:
        raise BenchError(f"/metrics has no {missing.args[0]}") from None


def scrape(port: int, pbx: str) -> DaemonCounters:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        return parse_metrics(response.read(), pbx)


def healthz(port: int) -> dict[str, Any]:
    """The ``/healthz`` report; it answers 503 (same body) while a PBX link is down."""
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        body = err.read()
        err.close()
    report: dict[str, Any] = json.loads(body)
    return report
