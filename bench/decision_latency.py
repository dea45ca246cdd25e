"""Compliance decision latency: DialBegin read from the socket → Hangup written to it.

A replay server in a child process (so it does not compete with the client for the GIL)
streams the mixed_busy_period capture (~13.9k frames) as fast as loopback takes it; the
client runs the daemon's path: AmiClient → events to the guard → tracker → OutboundDial →
guard → Enforcer → ``Action: Hangup``.  Every number the capture dials is on the DNC list in
``enforce`` mode, so every outbound dial is a sample.

Latency per dial = (wall clock just before the Hangup is written) − (wall clock when the
read holding its DialBegin returned).  It includes the rest of that 64 KiB read being
processed first, which is what a real daemon under load pays too.

Run alone: ``python -m bench.decision_latency [--passes N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import multiprocessing
import re
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog

from bench import QUICK, BenchError, JsonValue, Profile, Report
from ctid.ami.capture import parse_capture
from ctid.ami.client import AmiClient
from ctid.ami.codec import Message
from ctid.ami.events import TRACKED_EVENTS
from ctid.ami.server import AmiReplayServer
from ctid.compliance import ComplianceService, ComplianceSettings, tracker_lookup
from ctid.pipeline import PbxPipeline
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker

CAPTURE = Path(__file__).resolve().parent.parent / "tests" / "captures" / "mixed_busy_period.ami.gz"
_DIALLED = re.compile(rb"\r\nDialString: ([0-9+]+)@carrier\r\n")
PASS_TIMEOUT_S = 60.0
MIN_FRAMES_PER_S = 10_000


@dataclass(frozen=True, slots=True)
class Pass:
    latencies: list[float]
    dials: int
    frames: int
    stream_seconds: float


def _serve(port_out: Connection, stop_in: Connection, passes: int, speed: float | None) -> None:
    asyncio.run(_serve_async(port_out, stop_in, passes, speed))


async def _serve_async(
    port_out: Connection, stop_in: Connection, passes: int, speed: float | None
) -> None:
    capture = parse_capture(gzip.decompress(CAPTURE.read_bytes()), name="mixed")
    async with AmiReplayServer([capture] * passes, speed=speed) as server:
        port_out.send(server.port)
        await asyncio.to_thread(stop_in.recv)  # the parent says when it is done


def _policy() -> ComplianceSettings:
    off = {"mode": "off"}
    return ComplianceSettings.model_validate(
        {
            "version": "bench",
            "do_not_call": {"mode": "enforce"},
            **dict.fromkeys(("calling_hours", "frequency", "disclosure", "abandon_rate"), off),
        }
    )


async def _one_pass(port: int, numbers: set[str], last_ts: float) -> Pass:
    pipeline = PbxPipeline(CallTracker("pbx", EndpointDirectory()), DailyTallies(ZoneInfo("UTC")))
    senders: dict[str, AmiClient] = {}
    service = ComplianceService(
        _policy(), tracker_lookup({"pbx": pipeline.tracker}), senders, lambda: 0.0
    )
    for number in numbers:
        service.guard.optouts.add(number, 0.0)
    received: dict[str, float] = {}
    reads: list[float] = []
    pipeline.sinks.append(service.effect_sink)
    pipeline.event_sinks.append(service.event_sink("pbx"))

    def on_messages(batch: list[Message], received_at: float) -> None:
        reads.append(received_at)
        for message in batch:
            if message.name == "DialBegin" and (channel := message.get("Channel")):
                received.setdefault(channel, received_at)
        pipeline.on_messages(batch, received_at)

    client = AmiClient(
        name="pbx", host="127.0.0.1", port=port, username="ctid", secret="ctidsecret",
        keep_events=TRACKED_EVENTS, on_messages=on_messages, ping_interval=60.0,
    )  # fmt: skip
    senders["pbx"] = client
    tasks = [asyncio.create_task(client.run()), asyncio.create_task(service.run())]
    try:
        async with asyncio.timeout(PASS_TIMEOUT_S):
            # Polling: the client and the tracker expose counters, not events to wait on.
            while pipeline.tracker.last_ts < last_ts or not service.enforcer.idle:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    outcomes = list(service.enforcer.outcomes)
    if not outcomes or not all(o.ok for o in outcomes):
        raise BenchError(f"{len(outcomes)} Hangups, not all answered Success")
    latencies = [
        o.sent_at - received[o.decision.channel] for o in outcomes if o.decision.channel in received
    ]
    return Pass(latencies, len(outcomes), client.frames, reads[-1] - reads[0])


def _last_tracked_timestamp(data: bytes) -> float:
    """PBX time of the capture's last event the tracker applies: a pass is read by then."""
    tracked = [
        f.timestamp
        for f in parse_capture(data).events
        if f.timestamp is not None
        and f.raw.split(b"\r\n", 1)[0].removeprefix(b"Event: ").decode() in TRACKED_EVENTS
    ]
    return max(tracked)


def measure(passes: int, speed: float | None = None) -> list[Pass]:
    """``speed`` None streams as fast as loopback goes; 420 is ~10k frames/s for this capture."""
    data = gzip.decompress(CAPTURE.read_bytes())
    numbers = {m.decode() for m in _DIALLED.findall(data)}
    last_ts = _last_tracked_timestamp(data)
    ctx = multiprocessing.get_context("spawn")
    port_in, port_out = ctx.Pipe(duplex=False)
    stop_in, stop_out = ctx.Pipe(duplex=False)
    server = ctx.Process(target=_serve, args=(port_out, stop_in, passes, speed), daemon=True)
    server.start()
    try:
        if not port_in.poll(60):
            raise BenchError("replay server did not start")
        port = int(port_in.recv())
        return [asyncio.run(_one_pass(port, numbers, last_ts)) for _ in range(passes)]
    finally:
        stop_out.send(None)
        server.join(timeout=10)
        if server.is_alive():
            server.terminate()
            server.join()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(profile: Profile, speed: float | None = None) -> Report:
    # Log events are rendered but not printed: their cost stays in the figures, the noise not.
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    try:
        results = measure(profile.tcp_repeats, speed)
    finally:
        structlog.reset_defaults()
    samples = [lat for r in results for lat in r.latencies]
    rates = [r.frames / r.stream_seconds for r in results if r.stream_seconds > 0]
    ms = {
        "p50_ms": 1000 * _quantile(samples, 0.50),
        "p99_ms": 1000 * _quantile(samples, 0.99),
        "max_ms": 1000 * max(samples),
        "mean_ms": 1000 * statistics.fmean(samples),
    }
    figures: dict[str, JsonValue] = {
        "passes": len(results),
        "hangups": sum(r.dials for r in results),
        "samples": len(samples),
        "frames_per_pass": results[0].frames,
        "stream_frames_per_s": rates,
        **ms,
    }
    slow = min(rates) < MIN_FRAMES_PER_S
    table = "\n".join(
        [
            "compliance decision latency (DialBegin read → Hangup written)",
            f"  passes {len(results)}, hangups {figures['hangups']}, samples {len(samples)}",
            f"  stream rate {min(rates):,.0f}–{max(rates):,.0f} frames/s"
            + ("  (below the 10k frames/s target!)" if slow else ""),
            "  " + ", ".join(f"{k.removesuffix('_ms')} {v:.2f} ms" for k, v in ms.items()),
        ]
    )
    return Report(figures, table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--passes", type=int, default=QUICK.tcp_repeats)
    parser.add_argument(
        "--speed", type=float, default=None, help="recorded pace × SPEED (default: flat out)"
    )
    args = parser.parse_args(argv)
    profile = Profile("cli", repeats=1, tcp_repeats=args.passes, split_read=1)
    print(run(profile, args.speed).table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
