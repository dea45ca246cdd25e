"""Pipeline benchmark: the numbers ctid's event loop must reach, measured in one run.

* Throughput at saturation over TCP loopback: a load generator process (:mod:`bench.loadgen`)
  writes copies of the mixed capture (:mod:`bench.remap`) as fast as the socket takes them;
  the process under test (:mod:`bench.subject`) reads them with ``AmiClient`` → codec →
  tracker → tallies → call metrics.  The same load through panoramisk's ``Manager`` + the same
  tracker is the baseline, and ctid with its codec as it was before its fast path the "before".
* In process, no sockets: the same bytes through codec + pipeline, before and after.
* Decision latency at fixed rates with ``/metrics`` (5 000 seats) scraped every second: from
  the moment the generator wrote a ``DialBegin`` to the tracker's ``OutboundDial``; also from
  the read that delivered it, and for every read (all frames, not only decisions).
* CPU share of one core at 2.3k frames/s (the process under test only).
* Memory and ``/metrics`` render time at 5 000 seats and 5 000 open calls (:mod:`footprint`).
"""

from __future__ import annotations

import bisect
import gc
import gzip
import math
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from bench import (
    BenchError,
    Profile,
    Report,
    Timing,
    codec_before,
    footprint,
    loadgen,
    subject,
    time_round_robin,
)
from bench import pipeline_report as report
from bench.pipeline_report import CLIENTS, SEATS
from bench.remap import copies
from ctid.ami.client import LIST_EVENTS
from ctid.ami.codec import AmiCodec, Message
from ctid.ami.events import TRACKED_EVENTS
from ctid.pipeline import PbxPipeline

FRAMES_PER_COPY = 13_905  # event frames of the mixed capture after the login response
CALLS_PER_COPY = 95
CALLS = 5_000
SPAWN_TIMEOUT_S = 120.0
READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    saturation_copies: int
    saturation_rounds: int
    paced_seconds: float
    inprocess_copies: int
    inprocess_repeats: int
    render_repeats: int
    diagnostics: bool  # the paced runs that explain the goals, not only measure them


SETTINGS = {
    "quick": Settings(4, 2, 3.0, 2, 3, 3, diagnostics=False),
    "full": Settings(12, 5, 20.0, 6, 15, 20, diagnostics=True),
}


# --- processes --------------------------------------------------------------------------------


def _receive(conn: Connection, what: str, timeout: float = SPAWN_TIMEOUT_S) -> Any:
    if not conn.poll(timeout):
        raise BenchError(f"{what}: no answer within {timeout:g} s")
    return conn.recv()


def _start(target: Callable[..., None], *args: object) -> tuple[Any, Connection]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=target, args=(*args, child), daemon=True)
    process.start()
    return process, parent


def _finish(process: Any) -> None:
    process.join(timeout=10)
    if process.is_alive():
        process.terminate()
        process.join()


def _subject_run(job: subject.Job, gen: Connection, scrape: bool) -> tuple[Any, Any]:
    """Start the process under test against the generator; return (Outcome, Served)."""
    process, conn = _start(subject.run, job)
    try:
        http_port = _receive(conn, f"{job.client} http") if job.http else None
        gen.send(http_port if scrape else None)
        outcome = _receive(conn, f"{job.client} run", subject.RUN_TIMEOUT_S + 30)
        served = _receive(gen, "load generator")
    finally:
        _finish(process)
    return outcome, served[1]


# --- throughput -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Saturation:
    frames: int
    timings: dict[str, Timing]
    cpu: dict[str, Timing]  # CPU seconds of the process under test
    calls_ended: dict[str, int]
    frames_read: dict[str, int]


def saturation(s: Settings) -> Saturation:
    plan = loadgen.Plan(copies=s.saturation_copies, clients=s.saturation_rounds * len(CLIENTS))
    gen_process, gen = _start(loadgen.serve, plan)
    runs: dict[str, list[float]] = {c: [] for c in CLIENTS}
    cpu: dict[str, list[float]] = {c: [] for c in CLIENTS}
    ended: dict[str, int] = {}
    read: dict[str, int] = {}
    try:
        _, port, frames = _receive(gen, "load generator")
        for _ in range(s.saturation_rounds):
            for client in CLIENTS:
                job = subject.Job(port, client, seats=s.saturation_copies * 10)
                outcome, _served = _subject_run(job, gen, scrape=False)
                runs[client].append(outcome.seconds)
                cpu[client].append(outcome.cpu_seconds)
                ended[client], read[client] = outcome.calls_ended, outcome.frames
    finally:
        _finish(gen_process)
    expected = CALLS_PER_COPY * s.saturation_copies
    if any(n != expected for n in ended.values()):
        raise BenchError(f"calls ended per client {ended}, expected {expected} each")
    return Saturation(
        frames=frames,
        timings={c: Timing(tuple(v)) for c, v in runs.items()},
        cpu={c: Timing(tuple(v)) for c, v in cpu.items()},
        calls_ended=ended,
        frames_read=read,
    )


# --- in process: before and after -------------------------------------------------------------


def inprocess(s: Settings, repeats: int) -> tuple[int, dict[str, Timing]]:
    data = gzip.decompress(loadgen.CAPTURE.read_bytes())
    body = b"".join(copies(data, s.inprocess_copies))
    reads = [body[i : i + READ_SIZE] for i in range(0, len(body), READ_SIZE)]
    keep = TRACKED_EVENTS | LIST_EVENTS
    frames = s.inprocess_copies * FRAMES_PER_COPY

    def case(make: Callable[[], AmiCodec | codec_before.AmiCodec], track: bool) -> float:
        codec = make()
        pipeline = subject.build_floor(s.inprocess_copies * 10, subject.Recorder()).pipeline
        start = time.perf_counter()
        _drive(codec, pipeline if track else None, reads)
        elapsed = time.perf_counter() - start
        if codec.frames_seen != frames:
            raise BenchError(f"codec saw {codec.frames_seen} frames, expected {frames}")
        return elapsed

    def new() -> AmiCodec:
        return AmiCodec(expect_banner=False, keep_events=keep)

    def old() -> codec_before.AmiCodec:
        return codec_before.AmiCodec(expect_banner=False, keep_events=keep)

    cases: dict[str, Callable[[], float]] = {
        "codec_after": lambda: case(new, track=False),
        "codec_before": lambda: case(old, track=False),
        "pipeline_after": lambda: case(new, track=True),
        "pipeline_before": lambda: case(old, track=True),
    }
    return frames, time_round_robin(cases, repeats)


def _drive(
    codec: AmiCodec | codec_before.AmiCodec, pipeline: PbxPipeline | None, reads: list[bytes]
) -> None:
    for data in reads:
        items = codec.feed(data)
        if pipeline is not None:
            pipeline.on_messages([m for m in items if isinstance(m, Message)], time.time())


# --- latency and CPU at fixed rates ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Paced:
    rate: float
    client: str
    scraped: bool
    renderer: str
    seconds: float
    frames: int
    cpu_share: float
    decision_ms: list[float]  # generator wrote the DialBegin → OutboundDial
    decision_unmatched: int
    decision_from_read_ms: list[float]  # the read returned → OutboundDial
    read_ms: list[float]  # generator wrote a read's last frame → that read applied
    scrapes_ms: list[float]
    scrape_bytes: int
    scrape_errors: int


def paced(
    rate: float, seconds: float, *, scrape: bool, renderer: str = "fast", client: str = "ctid"
) -> Paced:
    frames = int(rate * seconds)
    plan = loadgen.Plan(
        copies=math.ceil(frames / FRAMES_PER_COPY), clients=1, rate=rate, frames_limit=frames
    )
    gen_process, gen = _start(loadgen.serve, plan)
    try:
        _, port, _ = _receive(gen, "load generator")
        http = not client.startswith("bare")
        job = subject.Job(port, client, seats=SEATS, http=http, renderer=renderer)
        outcome, served = _subject_run(job, gen, scrape=scrape)
    finally:
        _finish(gen_process)
    sent = {(linkedid, float(ts)): at for linkedid, ts, at in served.dial_sent}
    decision_ms = [
        (at - sent[(linkedid, ts)]) * 1000
        for linkedid, ts, at, _lag in outcome.decisions
        if (linkedid, ts) in sent
    ]
    ends = [end for end, _ in served.ticks]
    read_ms = [
        (at - served.ticks[bisect.bisect_right(ends, last)][1]) * 1000
        for last, at in outcome.reads
        if 0 <= last < frames
    ]
    return Paced(
        rate=rate,
        client=client,
        scraped=scrape,
        renderer=renderer,
        seconds=outcome.seconds,
        frames=frames,
        cpu_share=outcome.cpu_seconds / outcome.seconds,
        decision_ms=decision_ms,
        decision_unmatched=len(outcome.decisions) - len(decision_ms),
        decision_from_read_ms=[lag * 1000 for *_, lag in outcome.decisions],
        read_ms=read_ms,
        scrapes_ms=served.scrapes_ms,
        scrape_bytes=served.scrape_bytes,
        scrape_errors=served.scrape_errors,
    )


# --- the benchmark --------------------------------------------------------------------------


def footprint_run(s: Settings) -> footprint.Footprint:
    process, conn = _start(footprint.run, footprint.Job(SEATS, CALLS, s.render_repeats))
    try:
        result: footprint.Footprint = _receive(conn, "footprint", 300)
    finally:
        _finish(process)
    return result


def run(profile: Profile) -> Report:
    s = SETTINGS.get(profile.name, SETTINGS["quick"])
    gc.collect()
    phases: dict[str, float] = {}
    clock = time.perf_counter()
    inproc_frames, inproc = inprocess(s, s.inprocess_repeats)
    phases["inprocess"], clock = time.perf_counter() - clock, time.perf_counter()
    sat = saturation(s)
    phases["saturation"], clock = time.perf_counter() - clock, time.perf_counter()
    seconds = s.paced_seconds
    slow = paced(2_300, seconds, scrape=True)
    fast = paced(10_000, seconds, scrape=True)
    runs = [slow, fast]
    if s.diagnostics:
        runs.append(paced(10_000, seconds, scrape=True, renderer="stock"))
        runs.append(paced(10_000, seconds, scrape=False))
        runs.append(paced(2_300, seconds, scrape=False))
    runs.append(paced(2_300, seconds, scrape=False, client="bare"))
    if s.diagnostics:  # what a different read path in ctid.ami.link would save
        runs.append(paced(2_300, seconds, scrape=False, client="bare_64k"))
        runs.append(paced(2_300, seconds, scrape=False, client="bare_buffered"))
    phases["paced"], clock = time.perf_counter() - clock, time.perf_counter()
    foot = footprint_run(s)
    phases["footprint"] = time.perf_counter() - clock
    goals = report.goals(sat, slow, fast, foot)
    figures = report.figures(s, inproc_frames, inproc, sat, runs, foot, goals)
    figures["phase_seconds"] = phases
    return Report(
        figures=figures, table=report.render(sat, inproc_frames, inproc, runs, foot, goals)
    )
