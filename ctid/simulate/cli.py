"""``ctid simulate``: serve a synthetic PBX over AMI, or write its stream to a file."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gzip
import io
import json
import os
import random
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ctid.errors import InputError
from ctid.simulate.generator import Simulation, simulate
from ctid.simulate.plan import SimulationSpec
from ctid.simulate.template import bundled_templates

DEFAULT_SECRET = "ctid-sim"
SECRET_ENV = "CTID_SIM_SECRET"
PROGRESS_EVERY_S = 10.0
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|min|h|d)?\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def register(sub: Any) -> None:
    """Add ``simulate`` to ``sub`` (the top-level subparsers)."""
    simulate_cmd = sub.add_parser(
        "simulate",
        help="a synthetic PBX over AMI for demos, load and soak tests",
        description="Serve a synthetic Asterisk PBX over AMI: calls of N seats made from real "
        "Asterisk 22 recordings (noise events included) with fresh identifiers, times, seats "
        "and customers. Point a ctid [[pbx]] at it (the snippet is printed), or --write the "
        "stream for 'ctid replay'. --truth writes what ctid should report.",
    )
    simulate_cmd.add_argument("--seats", default="10", help="number of seats, 1001.. (default 10)")
    simulate_cmd.add_argument(
        "--calls-per-seat-hour", default="12", metavar="R", help="calls per seat and hour (12)"
    )
    simulate_cmd.add_argument(
        "--duration", default="1h", help="calls start within this time: 90s, 30m, 1h, 2d (1h)"
    )
    simulate_cmd.add_argument("--seed", default=None, help="random seed (default: new, printed)")
    simulate_cmd.add_argument(
        "--start", default=None, help="PBX time of the start: epoch seconds or ISO 8601 (now)"
    )
    simulate_cmd.add_argument(
        "--extra-talk",
        default="0-120",
        metavar="LOW-HIGH",
        help="seconds of talk added to each answered call, drawn uniformly (0-120)",
    )
    simulate_cmd.add_argument(
        "--speed", default=None, help="pace: recorded time / speed (default 1: real time)"
    )
    simulate_cmd.add_argument(
        "--flat-out", action="store_true", help="send as fast as the client reads (load tests)"
    )
    simulate_cmd.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    simulate_cmd.add_argument("--port", default="5038", help="listen port (5038)")
    simulate_cmd.add_argument("--username", default="ctid", help="AMI user to accept (ctid)")
    simulate_cmd.add_argument(
        "--secret", default=None, help=f"AMI secret (default: ${SECRET_ENV} or {DEFAULT_SECRET})"
    )
    simulate_cmd.add_argument(
        "--write", type=Path, metavar="FILE", help="write the stream (.ami or .ami.gz), don't serve"
    )
    simulate_cmd.add_argument("--truth", type=Path, metavar="FILE", help="write the truth (JSON)")
    simulate_cmd.add_argument(
        "--loop", action="store_true", help="start again, moved to the present, when it ends"
    )
    simulate_cmd.set_defaults(handler=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    _check_combinations(args)
    seed = _integer("--seed", args.seed) if args.seed is not None else random.randrange(10**9)
    spec = SimulationSpec(
        seats=_integer("--seats", args.seats),
        start=_start(args.start),
        seed=seed,
        calls_per_seat_hour=_number("--calls-per-seat-hour", args.calls_per_seat_hour),
        duration=_duration(args.duration),
        extra_talk=_extra_talk(args.extra_talk),
    )
    speed = None if args.flat_out else _number("--speed", args.speed or "1")
    port = _integer("--port", args.port)
    if not 0 <= port <= 65535:
        raise InputError(f"--port must be between 0 and 65535, not {port}")
    sim = simulate(spec, bundled_templates())
    _say(
        f"simulate: {spec.seats} seats, {len(sim.plan)} calls starting within "
        f"{spec.duration:g} s, seed {seed}"
    )
    if args.truth is not None:
        _write_truth(args.truth, sim)
    if args.write is not None:
        _write_stream(args.write, sim)
        return 0
    secret = args.secret or os.environ.get(SECRET_ENV) or DEFAULT_SECRET
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sim, args, port, secret, speed))
    return 0


def _check_combinations(args: argparse.Namespace) -> None:
    for path in (args.write, args.truth):
        if path is not None and not path.parent.is_dir():
            raise InputError(f"{path}: cannot write (no directory {path.parent})")
    if args.flat_out and args.speed is not None:
        raise InputError("--speed and --flat-out exclude each other")
    if args.write is not None and (args.loop or args.flat_out or args.speed is not None):
        raise InputError("--write only writes the stream; --loop, --speed, --flat-out serve it")


def _integer(option: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{option} must be a whole number, not {text!r}") from None


def _number(option: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{option} must be a number, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise InputError(f"{option} must be above 0, not {text!r}")
    return value


def _duration(text: str) -> float:
    match = _DURATION.match(text)
    if not match:
        raise InputError(f"--duration must look like 90s, 30m, 1h or 2d, not {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or ""]


def _extra_talk(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise InputError(f"--extra-talk must be LOW-HIGH in whole seconds, not {text!r}") from None


def _start(text: str | None) -> float:
    if text is None:
        return float(int(time.time()))
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise InputError(f"--start must be epoch seconds or ISO 8601, not {text!r}") from None


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Progress:
    """Prints how far a stream has got, at most every :data:`PROGRESS_EVERY_S` seconds."""

    def __init__(self, total: int, done_note: str) -> None:
        self.total, self.done_note = total, done_note
        self.last = time.monotonic()

    def __call__(self, frames: int, pbx_time: float | None) -> None:
        now = time.monotonic()
        finished = frames >= self.total
        if not finished and now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        when = "" if pbx_time is None else f", PBX time {_utc(pbx_time)}"
        share = 100 * frames // max(self.total, 1)
        _say(f"simulate: {frames:,} of {self.total:,} frames ({share} %){when}")
        if finished:
            _say(f"simulate: {self.done_note}")


def _utc(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _write_truth(path: Path, sim: Simulation) -> None:
    try:
        path.write_text(json.dumps(sim.truth(), ensure_ascii=False, indent=1) + "\n", "utf-8")
    except OSError as err:
        raise InputError(f"{path}: cannot write ({err.strerror})") from err
    _say(f"simulate: truth written to {path}")


def _write_stream(path: Path, sim: Simulation) -> None:
    total = len(sim.stream())
    stream = sim.stream(_Progress(total, f"stream written to {path}; try: ctid replay {path}"))
    preamble = sim.templates.preamble
    try:
        with _open_for_writing(path) as out:
            out.write(preamble.banner + preamble.login_response)
            for frame in stream:
                out.write(frame.raw)
    except OSError as err:
        raise InputError(f"{path}: cannot write ({err.strerror})") from err


def _open_for_writing(path: Path) -> gzip.GzipFile | io.BufferedWriter:
    if path.suffix == ".gz":
        return gzip.open(path, "wb", compresslevel=5)
    return path.open("wb")


async def _serve(
    sim: Simulation, args: argparse.Namespace, port: int, secret: str, speed: float | None
) -> None:
    from ctid.ami.server import AmiReplayServer

    total = len(sim.stream())
    after = "pass done, starting again" if args.loop else "all calls sent; idle until Ctrl-C"
    server = AmiReplayServer(
        sim.capture(_Progress(total, after)),
        host=args.host,
        port=port,
        username=args.username,
        secret=secret,
        speed=speed,
        loop=args.loop,
        retime=args.loop,
    )
    try:
        await server.start()
    except OSError as err:
        raise InputError(f"cannot listen on {args.host}:{port}: {err.strerror}") from err
    # Ctrl-C and SIGTERM end the wait below instead of cancelling this task: a cancel landing
    # inside the server's close would print a traceback.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        print(_listening(args.host, server.port, args.username, secret, speed), flush=True)
        await stop.wait()
    finally:
        await server.close()


def _listening(host: str, port: int, username: str, secret: str, speed: float | None) -> str:
    pace = "flat out" if speed is None else f"at {speed:g}x real time"
    target = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    secret_line = (
        f'secret = "{DEFAULT_SECRET}"'
        if secret == DEFAULT_SECRET
        else f'secret_env = "{SECRET_ENV}"      # set it to the simulator\'s secret'
    )
    return "\n".join(
        [
            f"simulated PBX listening on {host}:{port} (AMI user {username}, {pace});",
            "the first login gets the stream. Point ctid at it with:",
            "",
            "[[pbx]]",
            'name = "sim"',
            f'host = "{target}"',
            f"port = {port}",
            f'username = "{username}"',
            secret_line,
            'auth = "md5"',
            'trunks = ["carrier"]',
            "",
        ]
    )
