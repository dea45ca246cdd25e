"""The load generator: a lean AMI server in its own process, so it never competes for our GIL.

Blocking sockets, no asyncio: it sends the banner, answers the client's ``Login`` (echoing its
``ActionID``), then writes the remapped capture either as fast as the socket takes it
(*saturation*) or at a fixed frame rate (*paced*), and ends with a ``BenchDone`` user event
so the client knows it has everything.  Paced runs note when each ``DialBegin`` frame left,
and a thread scrapes ``/metrics`` once a second, as Prometheus would.
"""

from __future__ import annotations

import gzip
import re
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from bench.remap import copies

CAPTURE = Path(__file__).resolve().parent.parent / "tests" / "captures" / "mixed_busy_period.ami.gz"
HOST = "127.0.0.1"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
DONE_FRAME = b"Event: UserEvent\r\nUserEvent: BenchDone\r\n\r\n"
_ACTION_ID = re.compile(rb"(?im)^ActionID: *([^\r\n]*)")
_DIAL_KEY = re.compile(rb"(?m)^(DestLinkedid|Timestamp): *([^\r\n]*)")
_TICK_S = 0.0005
_SCRAPE_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class Plan:
    """What one generator process serves: ``copies`` of the capture, to ``clients`` clients."""

    copies: int
    clients: int
    rate: float | None = None  # frames per second; None: as fast as the socket takes them
    frames_limit: int | None = None  # paced runs send only the first frames


@dataclass(slots=True)
class Served:
    """What the generator reports back per client."""

    frames: int
    seconds: float  # first byte of the stream to the last
    dial_sent: list[tuple[str, str, float]] = field(default_factory=list)
    """(DestLinkedid, Timestamp, time.monotonic() when sent) of each paced DialBegin frame."""
    ticks: list[tuple[int, float]] = field(default_factory=list)
    """(frames sent so far, time.monotonic() just before the write) of each paced write."""
    scrapes_ms: list[float] = field(default_factory=list)
    scrape_bytes: int = 0
    scrape_errors: int = 0


def load_frames(count: int) -> list[bytes]:
    return copies(gzip.decompress(CAPTURE.read_bytes()), count)


def serve(plan: Plan, conn: Connection) -> None:
    """Child process entry point: report the port, serve ``plan.clients`` clients in turn."""
    frames = load_frames(plan.copies)
    if plan.frames_limit is not None:
        frames = frames[: plan.frames_limit]
    body = b"".join(frames)
    with socket.create_server((HOST, 0)) as listener:
        conn.send(("port", listener.getsockname()[1], len(frames)))
        for _ in range(plan.clients):
            scrape_port: int | None = conn.recv()  # None: no scraping
            client, _ = listener.accept()
            with client:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.send(("served", _serve_one(client, plan, frames, body, scrape_port)))


def _serve_one(
    client: socket.socket, plan: Plan, frames: list[bytes], body: bytes, scrape_port: int | None
) -> Served:
    client.sendall(BANNER)
    action_id = _read_login(client)
    reply = b"Response: Success\r\n"
    if action_id is not None:
        reply += b"ActionID: " + action_id + b"\r\n"
    client.sendall(reply + b"Message: Authentication accepted\r\n\r\n")
    stop = threading.Event()
    served = Served(frames=len(frames), seconds=0.0)
    scraper = None
    if scrape_port is not None:
        scraper = threading.Thread(target=_scrape, args=(scrape_port, stop, served), daemon=True)
        scraper.start()
    start = time.monotonic()
    if plan.rate is None:
        client.sendall(body)
    else:
        _paced(client, frames, plan.rate, served)
    client.sendall(DONE_FRAME)
    served.seconds = time.monotonic() - start
    _drain_until_closed(client)
    stop.set()
    if scraper is not None:
        scraper.join()
    return served


def _read_login(client: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        more = client.recv(4096)
        if not more:
            raise ConnectionError("client left before logging in")
        data += more
    found = _ACTION_ID.search(data)
    return found.group(1) if found else None


def _paced(client: socket.socket, frames: list[bytes], rate: float, served: Served) -> None:
    """Send frame ``i`` at ``start + i / rate``: whatever is due, in one write per tick."""
    start = time.monotonic()
    sent = 0
    while sent < len(frames):
        due = min(len(frames), int((time.monotonic() - start) * rate) + 1)
        if due > sent:
            batch = frames[sent:due]
            at = time.monotonic()
            client.sendall(b"".join(batch))
            served.ticks.append((due, at))
            for frame in batch:
                if frame.startswith(b"Event: DialBegin\r"):
                    keys = dict(_DIAL_KEY.findall(frame))
                    linkedid = keys.get(b"DestLinkedid", b"").decode()
                    served.dial_sent.append((linkedid, keys.get(b"Timestamp", b"").decode(), at))
            sent = due
        time.sleep(max(0.0, min(_TICK_S, start + sent / rate - time.monotonic())))


def _drain_until_closed(client: socket.socket) -> None:
    """Read (and ignore: pings are off) until the client hangs up."""
    try:
        while client.recv(65536):
            pass
    except OSError:
        pass


def _scrape(port: int, stop: threading.Event, served: Served) -> None:
    url = f"http://{HOST}:{port}/metrics"
    while not stop.wait(_SCRAPE_EVERY_S):
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                served.scrape_bytes = len(response.read())
        except OSError:
            served.scrape_errors += 1
            continue
        served.scrapes_ms.append((time.perf_counter() - start) * 1000)
