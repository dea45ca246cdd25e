"""A burst of 100k+ AMI frames sent flat out over TCP loses nothing and stays bounded.

Eight remapped copies of the mixed capture (``bench.remap``: other seats, other calls) are
interleaved into one stream of 111,240 frames (62 MB), which the replay server writes as fast
as the socket takes it, from a thread and event loop of its own (in the test's loop it would
take turns with the reader and never get ahead).  The real client, codec, pipeline, tracker
and tallies read it, and the store writer stores every call in a SQLite file.

There is no queue between the stages: ``AmiLink`` reads at most 64 KiB, the codec keeps at
most one unfinished frame (64 KiB cap), and the events go to the pipeline, the tracker, the
tallies and the writer's ``put`` in the same step, before the next read.  A slow consumer
therefore slows the reads, and TCP pushes back on the sender.  The test checks that from
the outside: the bytes the server has handed to its socket are never further ahead of what
the tracker has consumed than the kernel's socket buffers can hold.  The writer's own queue
is bounded by ``memory_rows`` (then the spool file), and nothing may be dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bench.remap import copies, seat_id
from ctid.ami.capture import Capture, RecordedFrame, parse_capture
from ctid.ami.client import AmiClient
from ctid.ami.codec import Message
from ctid.ami.events import TRACKED_EVENTS, AmiEvent, CdrWritten
from ctid.ami.server import AmiReplayServer
from ctid.pipeline import PbxPipeline
from ctid.store.capture import cdr_events
from ctid.store.spool import Spool
from ctid.store.writer import StoreWriter
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Call, CallEnded, Effect
from ctid.tracker.tallies import DailyTallies, SeatTally
from ctid.tracker.tracker import CallTracker
from tests.store.support import TEST_NUMBERS, count, migrated, wait_for, writer_running
from tests.truth import capture_streams, load_truth, seat_mismatches

CAPTURE = "mixed_busy_period"
COPIES = 8
"""13,905 frames per copy: eight copies make 111,240 frames."""
MEMORY_ROWS = 400
"""Small on purpose, so the writer's memory bound is reached if SQLite falls behind."""
SLACK_BYTES = 1024 * 1024
"""Besides the kernel buffers: the server's transport buffer (64 KiB high-water mark plus
one 8 KiB batch), the client's StreamReader (paused above 128 KiB) and one 64 KiB read."""


def socket_buffer_bytes() -> int:
    """The most the kernel may buffer on one loopback connection (receive + send side)."""
    total = 0
    for name, fallback in (("tcp_rmem", 32 << 20), ("tcp_wmem", 32 << 20)):
        try:
            total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
        except (OSError, IndexError, ValueError):
            total += fallback
    return total


class Probe:
    """Sits between the client and the pipeline; counts what the server sent and the
    pipeline consumed, and how far apart the two ever were."""

    def __init__(
        self, pipeline: PbxPipeline, writer: StoreWriter, spool: Spool, frames: list[bytes]
    ) -> None:
        self.pipeline, self.writer, self.spool = pipeline, writer, spool
        self.client: AmiClient | None = None
        self.offsets = [0, *itertools.accumulate(len(raw) for raw in frames)]
        """Byte offset in the stream after each event frame."""
        self.sent = 0
        self.most_ahead = 0
        self.most_rows_in_memory = 0
        """The writer's backlog less what waits in the spool file."""

    def chunking(self, data: bytes) -> Iterable[bytes]:
        """The server's chunker: writes ``data`` whole, counting it."""
        self.sent += len(data)
        return (data,)

    def on_messages(self, batch: list[Message], received: float) -> None:
        assert self.client is not None
        self.pipeline.on_messages(batch, received)
        consumed = self.offsets[self.client.frames - 1]  # frames include the login answer
        self.most_ahead = max(self.most_ahead, self.sent - consumed)
        in_memory = self.writer.backlog - self.spool.unread
        self.most_rows_in_memory = max(self.most_rows_in_memory, in_memory)


@contextlib.contextmanager
def server_thread(capture: Capture, probe: Probe) -> Iterator[int]:
    """An :class:`AmiReplayServer` on its own thread and loop; yields its port."""
    started = threading.Event()
    port: list[int] = []
    stop: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def serve() -> None:
        quit_ = asyncio.Event()
        server = AmiReplayServer(capture, close_after_stream=True, chunking=probe.chunking)
        async with server:
            port.append(server.port)
            stop.append((asyncio.get_running_loop(), quit_))
            started.set()
            await quit_.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="ami-burst-server")
    thread.start()
    try:
        assert started.wait(timeout=30), "the AMI server thread did not start"
        yield port[0]
    finally:
        if stop:
            loop, quit_ = stop[0]
            loop.call_soon_threadsafe(quit_.set)
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def burst() -> Capture:
    """The interleaved copies as one capture (banner and login answer from the original)."""
    original = capture_streams(CAPTURE)[0]
    head = parse_capture(original)
    events = [RecordedFrame(raw, None) for raw in copies(original, COPIES)]  # None: flat out
    return Capture(head.banner, head.login_response, events, name="burst")


def one_copy(seats: dict[str, SeatTally], copy: int, originals: list[str]) -> dict[str, SeatTally]:
    """The tallies of one copy's seats, under the capture's own seat ids."""
    mapped = {seat: seat_id(copy, int(seat)) for seat in originals}
    return {seat: seats[mine] for seat, mine in mapped.items() if mine in seats}


@pytest.mark.asyncio
async def test_a_burst_of_100k_frames_loses_no_call_and_stays_bounded(
    burst: Capture, tmp_path: Path
) -> None:
    frames = [frame.raw for frame in burst.events]
    assert len(frames) >= 100_000
    truth = load_truth(CAPTURE)
    calls_per_copy = len(truth["expected"]["per_call"])
    cdrs_per_copy = len(cdr_events(capture_streams(CAPTURE)[0]))
    ended: list[Call] = []

    def collect(effect: Effect) -> None:
        if isinstance(effect, CallEnded):
            ended.append(effect.call)

    with migrated(f"sqlite:///{tmp_path / 'ctid.db'}") as engine:
        spool = Spool(tmp_path / "spool" / "store-spool.jsonl", max_rows=1_000_000)
        writer = StoreWriter(
            engine,
            numbers=TEST_NUMBERS,
            flush_ms=50,
            batch_rows=200,
            memory_rows=MEMORY_ROWS,
            spool=spool,
        )

        def store_cdr(event: AmiEvent) -> None:
            if isinstance(event, CdrWritten):
                writer.record_cdr("burst", event)

        pipeline = PbxPipeline(
            CallTracker("burst", EndpointDirectory()),
            DailyTallies(ZoneInfo("UTC")),
            [collect, writer],
            [store_cdr],
        )
        probe = Probe(pipeline, writer, spool, frames)
        stream_over = asyncio.Event()
        with server_thread(burst, probe) as port:
            client = AmiClient(
                name="burst",
                host="127.0.0.1",
                port=port,
                username="ctid",
                secret="ctidsecret",
                keep_events=TRACKED_EVENTS,
                on_messages=probe.on_messages,
                on_disconnected=lambda _at: stream_over.set(),
            )
            probe.client = client
            async with writer_running(writer):
                task = asyncio.create_task(client.run())
                try:
                    await asyncio.wait_for(stream_over.wait(), timeout=120)
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await wait_for(lambda: writer.backlog == 0, within=60)
        stored = (count(engine, "calls"), count(engine, "cdrs"), count(engine, "call_segments"))

    # Every frame was read, every call of every copy ended once, with the truth's figures.
    assert client.frames == len(frames) + 1  # + the login answer
    assert probe.sent == probe.offsets[-1]
    assert len(ended) == COPIES * calls_per_copy
    assert len({call.linkedid for call in ended}) == len(ended)
    seats = pipeline.tallies.totals()
    originals = sorted(truth["expected"]["per_seat"])
    assert set(seats) <= {seat_id(k, int(s)) for k in range(COPIES) for s in originals}
    for copy in range(COPIES):
        assert seat_mismatches(truth, one_copy(seats, copy, originals)) == [], f"copy {copy}"
    tracker = pipeline.tracker
    assert (tracker.channels, tracker.calls, tracker.bridges, tracker.groups) == ({}, {}, {}, {})
    assert tracker.links.by_seat == {}

    # Bounded: the sender never got further ahead than the socket buffers allow (with Linux's
    # default limits, 62 MB of stream do not fit in them: TCP had to push back).
    assert probe.most_ahead <= socket_buffer_bytes() + SLACK_BYTES
    # The writer kept every row (memory, then the spool) and stored each call once.
    assert writer.dropped == 0
    # Memory, the spill buffer, and the rows a thread is appending to the spool file.
    assert probe.most_rows_in_memory <= 3 * MEMORY_ROWS
    segments = sum(len(call.segments) for call in ended)
    assert stored == (COPIES * calls_per_copy, COPIES * cdrs_per_copy, segments)
