"""Memory per seat and per active call, and ``/metrics`` render time, at 5 000 seats.

Runs in its own process so its RSS is ctid's alone.  Steps, with RSS (``/proc/self/statm``)
read after a ``gc.collect()`` at each: the floor with no seats; with ``seats`` configured seats,
each with a tally for today and a classified endpoint (what a seat costs while idle); then
with copies of the capture fed up to the moment it has the most calls open, until ``calls``
calls are open at once.  Only the events the tracker keeps are fed (others never reach it).
Then ``/metrics`` is rendered with prometheus_client's ``generate_latest`` (the floor
collector in the registry, as ``ctid.http`` has served it) and, once it works, with the fast
per-seat exposition of ``ctid.metrics.exposition``.
"""

from __future__ import annotations

import gc
import gzip
import os
import statistics
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from bench.remap import fill, template
from bench.subject import Recorder, build_floor, fast_renderer, floor_seats, stock_renderer
from ctid.ami.capture import parse_capture
from ctid.ami.codec import AmiCodec, Message
from ctid.ami.events import TRACKED_EVENTS
from ctid.pipeline import PbxPipeline

CAPTURE = Path(__file__).resolve().parent.parent / "tests" / "captures" / "mixed_busy_period.ami.gz"
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Job:
    seats: int
    calls: int
    render_repeats: int


@dataclass(slots=True)
class Footprint:
    rss_empty: int = 0  # bytes, floor with no seats
    rss_seats: int = 0  # after the seats
    rss_calls: int = 0  # after the calls
    seats: int = 0
    calls_open: int = 0
    channels_open: int = 0
    copies: int = 0
    peak_calls_per_copy: int = 0
    render_ms: list[float] = field(default_factory=list)
    render_bytes: int = 0
    fast_render_ms: list[float] = field(default_factory=list)
    fast_render_bytes: int = 0

    @property
    def per_seat(self) -> float:
        return (self.rss_seats - self.rss_empty) / max(1, self.seats)

    @property
    def per_call(self) -> float:
        return (self.rss_calls - self.rss_seats) / max(1, self.calls_open)


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def tracked_prefix(pattern: bytes) -> tuple[bytes, int]:
    """The tracked event frames of a template up to the peak of open calls, and that peak."""
    frames = parse_capture(pattern).events
    names = {name.encode() for name in TRACKED_EVENTS}
    kept = [f.raw for f in frames if f.raw.split(b"\r\n", 1)[0][7:] in names]
    pipeline = build_floor(0, Recorder()).pipeline
    codec = AmiCodec(expect_banner=False)
    peak, peak_at = 0, 0
    for i, raw in enumerate(kept):
        _feed(pipeline, codec, fill(raw, 0))
        if len(pipeline.tracker.calls) > peak:
            peak, peak_at = len(pipeline.tracker.calls), i
    return b"".join(kept[: peak_at + 1]), peak


def _feed(pipeline: PbxPipeline, codec: AmiCodec, data: bytes) -> None:
    batch = [m for m in codec.feed(data) if isinstance(m, Message)]
    pipeline.on_messages(batch, time.time())


def measure(job: Job) -> Footprint:
    # Only the small prefix outlives this line: the 15 MB of capture must not count as ctid's.
    prefix, peak = tracked_prefix(template(gzip.decompress(CAPTURE.read_bytes())))
    out = Footprint(seats=job.seats, peak_calls_per_copy=peak)
    out.rss_empty = rss()
    floor = build_floor(job.seats, Recorder(keep=False))  # its notes must not count
    pipeline = floor.pipeline
    for seat in floor_seats(job.seats):
        pipeline.tallies.tally(pipeline.tallies.local_day(time.time()), seat)
        pipeline.tracker.directory.classify(f"PJSIP/{seat}-00000001")
    out.rss_seats = rss()
    codec = AmiCodec(expect_banner=False, keep_events=TRACKED_EVENTS)
    while len(pipeline.tracker.calls) < job.calls:
        _feed(pipeline, codec, fill(prefix, out.copies))
        out.copies += 1
    out.rss_calls = rss()
    out.calls_open = len(pipeline.tracker.calls)
    out.channels_open = len(pipeline.tracker.channels)
    fast = fast_renderer(floor).render  # before the stock path registers the floor collector
    for _ in range(job.render_repeats):
        start = time.perf_counter()
        fast_body, _ = fast("")
        out.fast_render_ms.append((time.perf_counter() - start) * 1000)
    stock = stock_renderer(floor)
    for _ in range(job.render_repeats):
        start = time.perf_counter()
        body, _ = stock("")
        out.render_ms.append((time.perf_counter() - start) * 1000)
    out.render_bytes = len(body)
    out.fast_render_bytes = len(fast_body)
    return out


def run(job: Job, conn: Connection) -> None:
    """Child process entry point."""
    conn.send(measure(job))


def summary(values: list[float]) -> dict[str, float]:
    return {"best": min(values), "median": statistics.median(values), "max": max(values)}
