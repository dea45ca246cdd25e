"""Codec benchmark: ctid's sans-IO AmiCodec against panoramisk's parser, on the same bytes.

The bytes are the mixed_busy_period capture (~13.9k frames, 7.5 MB of real Asterisk AMI).

* In process: ctid fed 64 KiB reads, without and with a realistic ``keep_events`` set;
  panoramisk's ``AMIProtocol.data_received`` fed the same reads, on a protocol object wired as
  ``Manager.connection_made`` wires it (utf8, a factory whose ``dispatch`` gets the events)
  over a do-nothing transport.
* End to end over TCP loopback: an asyncio server in a child process (so it does not compete
  with the client for the GIL) sends the banner, answers the Login action, then writes the
  capture; ctid reads it with asyncio streams + AmiCodec, panoramisk with a real ``Manager``.
* Split UTF-8: tiny reads (7 bytes quick, 1 byte full) cut names such as 张伟; the
  ``CallerIDName`` values must equal those of one big read.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import multiprocessing
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from time import perf_counter
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from bench import BenchError, JsonValue, Profile, Report, Timing, time_round_robin
from ctid.ami.codec import AmiCodec, Banner, Message, encode_message

CAPTURE_NAME = "mixed_busy_period.ami"
CAPTURE = Path(__file__).resolve().parent.parent / "tests" / "captures" / f"{CAPTURE_NAME}.gz"
READ_SIZE = 64 * 1024
HOST = "127.0.0.1"
TCP_TIMEOUT_S = 120.0
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
KEEP_EVENTS = frozenset(
    {
        *("Newchannel", "Newstate", "Hangup", "DialBegin", "DialEnd", "OriginateResponse"),
        *("BridgeEnter", "BridgeLeave", "Hold", "Unhold", "LocalBridge"),
        *("LocalOptimizationBegin", "LocalOptimizationEnd", "BlindTransfer", "AttendedTransfer"),
        *("QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon"),
        *("AgentConnect", "AgentComplete", "ConfbridgeJoin", "ConfbridgeLeave"),
        *("SendFAX", "ReceiveFAX", "Cdr", "UserEvent", "Shutdown", "FullyBooted"),
    }
)


@dataclass(frozen=True, slots=True)
class Stream:
    data: bytes
    frames: int  # frames after the banner: the Login response and every event
    events: int  # what panoramisk dispatches (it hands responses to waiting actions)


def load_stream() -> Stream:
    data = gzip.decompress(CAPTURE.read_bytes())
    codec = AmiCodec()
    events = sum(isinstance(m, Message) and m.is_event for m in codec.feed(data))
    return Stream(data=data, frames=codec.frames_seen, events=events)


def cut(data: bytes, size: int) -> Iterator[bytes]:
    return (data[pos : pos + size] for pos in range(0, len(data), size))


# --- the parsers, driven in process ---------------------------------------------------------


def ctid_feed(reads: Iterable[bytes], keep: frozenset[str] | None, names: list[str] | None) -> int:
    codec = AmiCodec(keep_events=keep)
    for data in reads:
        items = codec.feed(data)
        if names is not None:
            collect_names(items, names)
    return codec.frames_seen


def collect_names(items: Iterable[Message | Banner], names: list[str]) -> None:
    # Case-insensitive, as panoramisk looks headers up, so CEL's ``CallerIDname`` counts too.
    for item in items:
        if isinstance(item, Message):
            names.extend(v for k, v in item.headers.items() if k.lower() == "calleridname")


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class _EventSink:
    """Stands in for ``panoramisk.Manager`` as the protocol's factory."""

    def __init__(self, names: list[str] | None = None) -> None:
        self.events = 0
        self.names = names

    def dispatch(self, message: Any) -> None:
        self.events += 1
        if self.names is not None and "CallerIDName" in message:
            self.names.append(str(message["CallerIDName"]))

    def connection_lost(self, exc: object) -> None:  # called on a Shutdown event
        pass


def panoramisk_feed(reads: Iterable[bytes], names: list[str] | None) -> int:
    sink = _EventSink(names)
    protocol = AMIProtocol()
    protocol.connection_made(_NullTransport())
    protocol.factory = sink
    protocol.encoding = "utf8"  # what Manager.connection_made sets (its default config)
    for data in reads:
        protocol.data_received(data)
    return sink.events


# --- timing ---------------------------------------------------------------------------------


def timed(run: Callable[[], int], expected: int) -> Callable[[], float]:
    def case() -> float:
        start = perf_counter()
        seen = run()
        elapsed = perf_counter() - start
        if seen != expected:
            raise BenchError(f"parser saw {seen} frames, expected {expected}")
        return elapsed

    return case


# --- end to end over TCP loopback -----------------------------------------------------------


def replay_body(data: bytes) -> bytes:
    """The capture without its banner and recorded Login response: the server sends its own."""
    after_banner = data[data.index(b"\n") + 1 :]
    return after_banner[after_banner.index(b"\r\n\r\n") + 4 :]


def serve(port_out: Connection, connections: int) -> None:
    """Child process: replay the capture to ``connections`` clients, one after another."""
    asyncio.run(_serve(port_out, connections))


async def _serve(port_out: Connection, connections: int) -> None:
    body = replay_body(gzip.decompress(CAPTURE.read_bytes()))
    left = connections
    all_served = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal left
        try:
            await _replay(reader, writer, body)
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            left -= 1
            if left == 0:
                all_served.set()

    server = await asyncio.start_server(handle, HOST, 0)
    async with server:
        port_out.send(server.sockets[0].getsockname()[1])
        await all_served.wait()


async def _replay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> None:
    writer.write(BANNER)
    codec = AmiCodec(expect_banner=False)
    login: Message | None = None
    while login is None:
        data = await reader.read(4096)
        if not data:
            return
        login = next((m for m in codec.feed(data) if isinstance(m, Message)), None)
    reply = {"Message": "Authentication accepted"}
    if (action_id := login.get("ActionID")) is not None:
        reply["ActionID"] = action_id  # panoramisk matches the reply to its Login by this
    writer.write(encode_message("Response", "Success", reply))
    writer.write(body)
    await writer.drain()
    while await reader.read(4096):  # hold on until the client hangs up: panoramisk
        pass  # reconnects if the server closes first


async def ctid_over_tcp(
    port: int, stream: Stream, keep: frozenset[str] | None, names: list[str] | None = None
) -> float:
    start = perf_counter()
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        login = {"ActionID": "1", "Username": "ctid", "Secret": "ctidsecret", "Events": "on"}
        writer.write(encode_message("Action", "Login", login))
        codec = AmiCodec(keep_events=keep)
        async with asyncio.timeout(TCP_TIMEOUT_S):
            while codec.frames_seen < stream.frames:
                data = await reader.read(READ_SIZE)
                if not data:
                    raise BenchError("replay server hung up early")
                items = codec.feed(data)
                if names is not None:
                    collect_names(items, names)
        return perf_counter() - start
    finally:
        writer.close()
        await writer.wait_closed()


async def panoramisk_over_tcp(port: int, stream: Stream, names: list[str] | None = None) -> float:
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[float] = loop.create_future()
    sink = _EventSink(names)

    def on_event(_manager: Any, message: Any) -> None:
        sink.dispatch(message)
        if sink.events == stream.events and not finished.done():
            finished.set_result(perf_counter())

    manager = Manager(
        host=HOST, port=port, username="ctid", secret="ctidsecret", loop=loop, ping_delay=3600
    )
    manager.register_event("*", on_event)
    start = perf_counter()
    try:
        await manager.connect()
        async with asyncio.timeout(TCP_TIMEOUT_S):
            return await finished - start
    finally:
        manager.close()
        await asyncio.sleep(0)  # let the transport report connection_lost


@dataclass(frozen=True, slots=True)
class TcpResult:
    timings: dict[str, Timing]
    names: dict[str, list[str]]  # CallerIDName values of one untimed run per parser


async def _measure_tcp(port: int, stream: Stream, repeats: int) -> TcpResult:
    cases: dict[str, Callable[[], Awaitable[float]]] = {
        "tcp_ctid_all": lambda: ctid_over_tcp(port, stream, None),
        "tcp_ctid_keep": lambda: ctid_over_tcp(port, stream, KEEP_EVENTS),
        "tcp_panoramisk": lambda: panoramisk_over_tcp(port, stream),
    }
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            gc.collect()
            runs[name].append(await case())
    names: dict[str, list[str]] = {"ctid": [], "panoramisk": []}
    await ctid_over_tcp(port, stream, None, names["ctid"])
    await panoramisk_over_tcp(port, stream, names["panoramisk"])
    return TcpResult({name: Timing(tuple(values)) for name, values in runs.items()}, names)


def measure_tcp(stream: Stream, repeats: int) -> TcpResult:
    ctx = multiprocessing.get_context("spawn")
    port_in, port_out = ctx.Pipe(duplex=False)
    server = ctx.Process(target=serve, args=(port_out, 3 * repeats + 2), daemon=True)
    server.start()
    try:
        if not port_in.poll(60):
            raise BenchError("replay server did not start")
        return asyncio.run(_measure_tcp(int(port_in.recv()), stream, repeats))
    finally:
        server.join(timeout=10)
        if server.is_alive():
            server.terminate()
            server.join()


# --- split UTF-8 ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameCheck:
    """How many CallerIDName values differ from a one-read parse, per way of reading."""

    names: int
    changed_split: int  # with profile.split_read-byte reads
    changed_64k: int  # with READ_SIZE reads, in process
    changed_tcp: int  # with whatever reads loopback TCP gave

    def figures(self, split_read: int) -> dict[str, JsonValue]:
        return {
            "names": self.names,
            f"changed_with_{split_read}_byte_reads": self.changed_split,
            f"changed_with_{READ_SIZE}_byte_reads": self.changed_64k,
            "changed_over_tcp": self.changed_tcp,
            "split_utf8_survives": self.changed_split == 0,
        }


def changed(reference: Sequence[str], other: Sequence[str]) -> int:
    differ = sum(a != b for a, b in zip(reference, other, strict=False))
    return differ + abs(len(reference) - len(other))


def check_names(
    stream: Stream, split_read: int, tcp_names: dict[str, list[str]]
) -> dict[str, NameCheck]:
    feeders: dict[str, Callable[[Iterable[bytes], list[str]], int]] = {
        "ctid": lambda reads, names: ctid_feed(reads, None, names),
        "panoramisk": panoramisk_feed,
    }
    checks: dict[str, NameCheck] = {}
    for parser, feed in feeders.items():
        names: dict[int, list[str]] = {}
        for size in (len(stream.data), READ_SIZE, split_read):
            feed(cut(stream.data, size), names.setdefault(size, []))
        whole = names[len(stream.data)]
        checks[parser] = NameCheck(
            names=len(whole),
            changed_split=changed(whole, names[split_read]),
            changed_64k=changed(whole, names[READ_SIZE]),
            changed_tcp=changed(whole, tcp_names[parser]),
        )
    return checks


# --- the benchmark --------------------------------------------------------------------------

CASES = {
    "ctid_all": "(a) ctid AmiCodec, every frame parsed",
    "ctid_keep": f"(b) ctid AmiCodec, keep_events ({len(KEEP_EVENTS)} names)",
    "panoramisk": "(c) panoramisk AMIProtocol.data_received",
    "tcp_ctid_all": "(d) TCP: ctid streams + AmiCodec, all",
    "tcp_ctid_keep": "(d) TCP: ctid streams + AmiCodec, keep",
    "tcp_panoramisk": "(d) TCP: panoramisk Manager",
}
RATIOS = {  # ctid case, panoramisk case
    "in process, all frames (a)/(c)": ("ctid_all", "panoramisk"),
    "in process, keep_events (b)/(c)": ("ctid_keep", "panoramisk"),
    "TCP, all frames": ("tcp_ctid_all", "tcp_panoramisk"),
    "TCP, keep_events": ("tcp_ctid_keep", "tcp_panoramisk"),
}


def speedup(fast: Timing, slow: Timing) -> tuple[float, float]:
    """Throughput ratio fast/slow, of the best runs and of the medians."""
    return slow.best / fast.best, slow.median / fast.median


def run(profile: Profile) -> Report:
    stream = load_stream()
    reads = list(cut(stream.data, READ_SIZE))
    timings = time_round_robin(
        {
            "ctid_all": timed(lambda: ctid_feed(reads, None, None), stream.frames),
            "ctid_keep": timed(lambda: ctid_feed(reads, KEEP_EVENTS, None), stream.frames),
            "panoramisk": timed(lambda: panoramisk_feed(reads, None), stream.events),
        },
        profile.repeats,
    )
    tcp = measure_tcp(stream, profile.tcp_repeats)
    timings.update(tcp.timings)
    names = check_names(stream, profile.split_read, tcp.names)
    ratios = {label: speedup(timings[a], timings[b]) for label, (a, b) in RATIOS.items()}
    figures: dict[str, JsonValue] = {
        "capture": CAPTURE_NAME,
        "bytes": len(stream.data),
        "frames": stream.frames,
        "events": stream.events,
        "read_size": READ_SIZE,
        "keep_events": sorted(KEEP_EVENTS),
        "repeats": profile.repeats,
        "tcp_repeats": profile.tcp_repeats,
        "cases": {name: t.figures(stream.frames) for name, t in timings.items()},
        "ratios": {k: {"best": best, "median": median} for k, (best, median) in ratios.items()},
        "names": {parser: c.figures(profile.split_read) for parser, c in names.items()},
    }
    return Report(figures=figures, table=render(stream, timings, ratios, names, profile))


def render(
    stream: Stream,
    timings: dict[str, Timing],
    ratios: dict[str, tuple[float, float]],
    names: dict[str, NameCheck],
    profile: Profile,
) -> str:
    lines = [
        f"codec: {CAPTURE_NAME}, {stream.frames:,} frames, {len(stream.data):,} bytes; "
        f"best and median of {profile.repeats} (in process) / {profile.tcp_repeats} (TCP) runs",
        f"{'case':<50}{'best frames/s':>15}{'median frames/s':>17}{'best s':>9}",
    ]
    for name, label in CASES.items():
        best, median = timings[name].best, timings[name].median
        frames = stream.frames
        lines.append(f"{label:<50}{frames / best:>15,.0f}{frames / median:>17,.0f}{best:>9.3f}")
    lines.extend(
        f"{'ctid/panoramisk, ' + label:<50}{best:>14.2f}x{median:>16.2f}x"
        for label, (best, median) in ratios.items()
    )
    for parser, check in names.items():
        lines.append(
            f"split UTF-8 survives ({profile.split_read}-byte reads), {parser}: "
            f"{'yes' if check.changed_split == 0 else 'no'} ({check.changed_split} of "
            f"{check.names} CallerIDName values changed; {READ_SIZE}-byte reads: "
            f"{check.changed_64k}, TCP: {check.changed_tcp})"
        )
    return "\n".join(lines)
