"""``ctid simulate``: synthetic calls made from real recordings agree with the truth they carry.

The generated truth comes from the recordings' own ground truth (plan + template truth, never
from ctid); ctid must report exactly that, offline, over TCP and through the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ctid.ami.capture import Capture, RecordedFrame
from ctid.ami.client import AmiClient
from ctid.ami.events import TRACKED_EVENTS
from ctid.cli import main
from ctid.pipeline import PbxPipeline
from ctid.replay import replay_streams
from ctid.simulate import make_templates
from ctid.simulate.compile import header_role
from ctid.simulate.frames import CRLF, headers_of, parse_datetime
from ctid.simulate.generator import Simulation, simulate
from ctid.simulate.plan import PlannedCall, SimulationSpec, seat_name
from ctid.simulate.render import render_call
from ctid.simulate.template import Template, bundled_templates
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Call, CallEnded, Effect
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker
from tests.test_tcp_accuracy import replay_over_tcp
from tests.truth import CAPTURES, call_mismatches, seat_expectations, seat_mismatches

START = 1_800_000_000.0
TEMPLATES_DIR = Path(__file__).parent.parent / "ctid" / "simulate" / "templates"
_UID = re.compile(rb"pbx-[0-9]{10}\.[0-9]+")
_CHANNEL = re.compile(rb"(?:PJSIP|Local)/[^\s,;\"'/]+?-[0-9a-f]{8}")
_BRIDGE = re.compile(rb"(?m)^BridgeUniqueid: (\S+)")
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SSRC = re.compile(rb"0x[0-9a-f]{8}|(?<=ssrc=)[0-9]+")
_LAB_SEAT = re.compile(r"(?<![0-9])10(?:0[1-9]|10)(?![0-9])")


def _floor(seats: int = 20, minutes: int = 30, seed: int = 20251122, **kw: Any) -> Simulation:
    spec = SimulationSpec(seats=seats, start=START, seed=seed, duration=minutes * 60.0, **kw)
    return simulate(spec)


@pytest.fixture(scope="module")
def floor() -> Simulation:
    return _floor()


@pytest.fixture(scope="module")
def floor_bytes(floor: Simulation) -> bytes:
    return floor.capture(lazy=False).to_bytes()


def _assert_agrees(truth: dict[str, Any], seats: dict[str, Any], calls: list[Call]) -> None:
    assert seat_mismatches(truth, seats) == []
    assert call_mismatches(truth, calls) == []


# --- the generated truth is what ctid measures -------------------------------------------


def test_offline_replay_matches_the_generated_truth(floor: Simulation, floor_bytes: bytes) -> None:
    truth = floor.truth()
    result = replay_streams([floor_bytes])
    assert result.tallies is not None
    _assert_agrees(truth, result.tallies.totals(), result.calls)
    # The comparison covers a busy floor, not an empty one.
    per_seat = truth["expected"]["per_seat"]
    assert len(per_seat) == 20
    assert sum(s["talk_seconds"] for s in per_seat.values()) > 3000
    assert sum(s["hold_seconds"] for s in per_seat.values()) > 0
    assert sum(s["internal_talk_seconds"] for s in per_seat.values()) > 0
    assert len(truth["expected"]["per_call"]) > 80
    assert len({c.template for c in floor.plan}) >= 9
    assert any(c.extra > 60 for c in floor.plan)


@pytest.mark.asyncio
async def test_tcp_replay_matches_the_generated_truth(floor: Simulation) -> None:
    # The lazy capture, as `ctid simulate` serves it: frames are made while they are sent.
    seats, calls = await _tracked_over_tcp(floor.capture())
    _assert_agrees(floor.truth(), seats, calls)


async def _tracked_over_tcp(capture: Capture) -> tuple[dict[str, Any], list[Call]]:
    pipeline, calls = await replay_over_tcp([capture])
    return pipeline.tallies.totals(), calls


def test_a_saturated_floor_without_extra_talk_matches_too() -> None:
    # Short recorded calls only, back to back: many more calls per seat, every template mixed.
    sim = _floor(seats=6, minutes=20, seed=4, calls_per_seat_hour=120, extra_talk=(0, 0))
    result = replay_streams([sim.capture(lazy=False).to_bytes()])
    assert result.tallies is not None
    _assert_agrees(sim.truth(), result.tallies.totals(), result.calls)
    assert len(sim.plan) > 150


# --- concurrency: identifiers and seats ---------------------------------------------------


def _call_frames(sim: Simulation) -> Iterator[tuple[PlannedCall, list[RecordedFrame]]]:
    for call in sim.plan:
        yield call, list(render_call(sim.templates[call.template], call))


def test_concurrent_calls_never_share_an_identifier(floor: Simulation) -> None:
    owners: dict[bytes, int] = {}
    spans: list[tuple[float, float]] = []
    for index, (_, frames) in enumerate(_call_frames(floor)):
        found: set[bytes] = set()
        for frame in frames:
            found.update(_UID.findall(frame.raw), _CHANNEL.findall(frame.raw))
            found.update(_BRIDGE.findall(frame.raw), _UUID.findall(frame.raw))
        for identifier in found:
            assert owners.setdefault(identifier, index) == index, identifier
        spans.append((frames[0].timestamp or 0.0, frames[-1].timestamp or 0.0))
    # ... and calls really do overlap: at the busiest moment many are up together.
    busiest = max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans)
    assert busiest >= 8


def test_no_seat_is_in_two_calls_at_once(floor: Simulation) -> None:
    busy: dict[str, list[tuple[float, float]]] = {}
    for call, frames in _call_frames(floor):
        for seat in call.seats:
            device = f"PJSIP/{seat}-".encode()
            times = [
                f.timestamp or 0.0
                for f in frames
                if device in f.raw and not f.raw.startswith(b"Event: Cdr")
            ]
            busy.setdefault(seat, []).append((min(times), max(times)))
    for seat, intervals in busy.items():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert end <= start, f"seat {seat} in two calls at {start}"


# --- rewriting: every byte kept, no recorded identifier left -------------------------------


def _identity_call(template: Template) -> PlannedCall:
    return PlannedCall(
        template=template.name,
        shift=0,
        extra=0,
        seats=template.seats,
        number=template.number,
        uid_base=template.uid_floor,
        suffix_base=template.suffix_floor,
        seed=1,
    )


@pytest.mark.parametrize("name", sorted(bundled_templates().templates))
def test_a_call_in_place_is_the_recording_byte_for_byte(name: str) -> None:
    # Same time, seats, number and counters: only the random UUIDs and SSRCs may differ.
    template = bundled_templates()[name]
    recording = gzip.decompress((TEMPLATES_DIR / f"{name}.ami.gz").read_bytes())
    recorded = b"".join(f.raw for f in _events_after_boot(recording))
    rendered = b"".join(f.raw for f in render_call(template, _identity_call(template)))
    if template.seats:  # seat names are the simulator's own: put the recorded ones back
        names = {seat_name(s).encode(): n.encode() for s, n in template.seat_names.items()}
        pattern = re.compile(b"|".join(re.escape(n) for n in sorted(names, key=len)[::-1]))
        rendered = pattern.sub(lambda m: names[m.group()], rendered)
    assert _SSRC.sub(b"S", _UUID.sub(b"U", rendered)) == _SSRC.sub(b"S", _UUID.sub(b"U", recorded))
    assert rendered != recorded  # the UUIDs did change


def _events_after_boot(recording: bytes) -> list[RecordedFrame]:
    from ctid.ami.capture import parse_capture

    return parse_capture(recording).events[1:]


@pytest.mark.parametrize("name", sorted(bundled_templates().templates))
def test_a_moved_call_keeps_no_recorded_identifier(name: str) -> None:
    template = bundled_templates()[name]
    number = None if template.number is None else template.number[:2] + "0" * 8
    call = PlannedCall(
        template=name,
        shift=40 * 86400,
        extra=37 if template.cut is not None else 0,
        seats=tuple(str(3001 + i) for i in range(len(template.seats))),
        number=number,
        uid_base=900_000,
        suffix_base=0x700000,
        seed=2,
    )
    raw = b"".join(f.raw for f in render_call(template, call))
    recording = gzip.decompress((TEMPLATES_DIR / f"{name}.ami.gz").read_bytes())
    assert not set(_UUID.findall(recording)) & set(_UUID.findall(raw))
    assert all(c.endswith(b"-007" + c[-5:]) for c in _CHANNEL.findall(raw))
    text = raw.decode()
    assert "2026-11-23" not in text
    assert "pbx-17954" not in text
    names = {seat_name(s) for s in call.seats}
    for recorded in [*template.seat_names.values(), template.number or "unused"]:
        assert recorded in names or recorded not in text
    for frame in text.split(CRLF * 2)[:-1]:
        headers = headers_of(frame.encode())
        for line in frame.split(CRLF):
            key, _, value = line.partition(":")
            role = header_role(headers["Event"], headers.get("Variable", ""), key)
            if role == "identity":
                assert not _LAB_SEAT.search(value), line


def test_cdr_and_cel_times_stay_consistent_with_extra_talk(floor: Simulation) -> None:
    billsec: dict[str, int] = {}
    checked = 0
    for _, frames in _call_frames(floor):
        for frame in frames:
            h = headers_of(frame.raw)
            ts = frame.timestamp or 0.0
            if h["Event"] == "CEL":
                assert int(ts) - parse_datetime(h["EventTime"]) in (0, 1)
            if h["Event"] != "Cdr":
                continue
            start, end = parse_datetime(h["StartTime"]), parse_datetime(h["EndTime"])
            assert end - start - int(h["Duration"]) in (0, 1)
            assert int(ts) >= end
            if h["AnswerTime"]:
                assert end - parse_datetime(h["AnswerTime"]) - int(h["BillableSeconds"]) in (0, 1)
            channels = (h["Channel"], h["DestinationChannel"])
            seats = [c[6:-9] for c in channels if re.fullmatch(r"PJSIP/[0-9]+-[0-9a-f]{8}", c)]
            if len(seats) == 1 and any(c.startswith("PJSIP/carrier-") for c in channels):
                billsec[seats[0]] = billsec.get(seats[0], 0) + int(h["BillableSeconds"])
            checked += 1
    want = {s: v["cdr_billsec_total"] for s, v in floor.truth()["expected"]["per_seat"].items()}
    assert billsec == {s: v for s, v in want.items() if v}
    assert checked > 100


def test_the_same_seed_gives_the_same_stream() -> None:
    first = _floor(seats=5, minutes=10, seed=9).capture(lazy=False).to_bytes()
    again = _floor(seats=5, minutes=10, seed=9).capture(lazy=False).to_bytes()
    other = _floor(seats=5, minutes=10, seed=10).capture(lazy=False).to_bytes()
    assert first == again
    assert first != other


def test_the_lazy_stream_is_a_sequence_of_the_same_frames(floor: Simulation) -> None:
    stream = floor.stream()
    frames = list(stream)
    assert len(stream) == len(frames)
    assert stream[0].raw.startswith(b"Event: FullyBooted")
    assert stream[-1] == frames[-1]
    assert stream[10:13] == frames[10:13]


def test_shipped_templates_are_what_the_builder_makes_from_the_recordings() -> None:
    for name in make_templates.SCENARIOS:
        data, meta = make_templates.build(name, CAPTURES)
        assert gzip.decompress((TEMPLATES_DIR / f"{name}.ami.gz").read_bytes()) == data
        assert json.loads((TEMPLATES_DIR / f"{name}.json").read_text("utf-8")) == json.loads(
            json.dumps(meta)
        )


# --- command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--seats", "0"], "--seats must be between 1 and"),
        (["--seats", "many"], "--seats must be a whole number"),
        (["--duration", "1 fortnight"], "--duration must look like"),
        (["--calls-per-seat-hour", "0"], "--calls-per-seat-hour must be above 0"),
        (["--extra-talk", "90-30"], "--extra-talk must be LOW-HIGH"),
        (["--speed", "2", "--flat-out"], "exclude each other"),
        (["--speed", "-1"], "--speed must be above 0"),
        (["--start", "yesterday"], "--start must be epoch seconds or ISO 8601"),
        (["--write", "x.ami", "--loop"], "--write only writes the stream"),
        (["--write", "/nonexistent/dir/x.ami"], "cannot write"),
        (["--port", "99999"], "--port must be between 0 and 65535"),
    ],
)
def test_bad_arguments_are_one_clear_line(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--seed", "1", "--duration", "5m", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ctid: error: ")
    assert says in err[-1]
    assert len(err) == 1


def test_a_busy_port_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert main(["simulate", "--seed", "1", "--duration", "5m", "--port", port]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"ctid: error: cannot listen on 127.0.0.1:{port}")


def test_written_stream_replays_to_the_written_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream, truth_file = tmp_path / "sim.ami.gz", tmp_path / "truth.json"
    args = ["--seats", "8", "--duration", "20m", "--seed", "5", "--start", str(int(START))]
    assert main(["simulate", *args, "--write", str(stream), "--truth", str(truth_file)]) == 0
    capsys.readouterr()
    assert main(["replay", str(stream), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    truth = json.loads(truth_file.read_text("utf-8"))
    for seat, want in seat_expectations(truth).items():
        got = report["seats"][seat]
        for key in ("outbound", "inbound", "answered", "calls", "internal_calls"):
            assert got[key] == getattr(want, key), (seat, key)
        for key in ("talk_seconds", "hold_seconds", "internal_talk_seconds"):
            assert got[key] == pytest.approx(getattr(want, key), abs=0.01), (seat, key)
    assert len(report["calls"]) == len(truth["expected"]["per_call"])
    assert sum(w.talk_seconds for w in seat_expectations(truth).values()) > 600


@pytest.mark.asyncio
async def test_the_command_serves_a_pbx_that_ctid_can_track(tmp_path: Path) -> None:
    truth_file = tmp_path / "truth.json"
    spec = ["--seats", "6", "--duration", "15m", "--seed", "8", "--start", str(int(START))]
    command = [sys.executable, "-m", "ctid", "simulate", *spec, "--flat-out", "--port", "0"]
    process = await asyncio.create_subprocess_exec(
        *command, "--truth", str(truth_file), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    # The same options make the same stream: count the events ctid will apply.
    same = simulate(SimulationSpec(seats=6, start=START, seed=8, duration=900.0))
    tracked = sum(1 for f in same.stream() if _event_name(f.raw) in TRACKED_EVENTS)
    try:
        assert process.stdout is not None
        printed = await asyncio.wait_for(_read_until(process.stdout, b"trunks ="), timeout=30)
        port = re.search(rb"(?m)^port = ([0-9]+)$", printed)
        assert port is not None
        assert b'secret = "ctid-sim"' in printed
        seats, calls = await _tracked_live(int(port.group(1)), tracked)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err
    assert b"Traceback" not in err
    _assert_agrees(json.loads(truth_file.read_text("utf-8")), seats, calls)


def _event_name(raw: bytes) -> str:
    return raw.split(b"\r\n", 1)[0].removeprefix(b"Event: ").decode()


async def _read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        line = await reader.readline()
        assert line, "the command ended before printing where it listens"
        seen += line
    return seen


async def _tracked_live(port: int, events: int) -> tuple[dict[str, Any], list[Call]]:
    """Log in as ctid does and track until ``events`` tracked events have been applied."""
    ended: list[Call] = []

    def collect(effect: Effect) -> None:
        if isinstance(effect, CallEnded):
            ended.append(effect.call)

    pipeline = PbxPipeline(
        CallTracker("sim", EndpointDirectory()), DailyTallies(ZoneInfo("UTC")), [collect]
    )
    client = AmiClient(
        name="sim",
        host="127.0.0.1",
        port=port,
        username="ctid",
        secret="ctid-sim",
        auth="md5",
        keep_events=TRACKED_EVENTS,
        on_messages=pipeline.on_messages,
    )
    task = asyncio.create_task(client.run())

    async def all_applied() -> None:
        while pipeline.events_applied < events:
            await asyncio.sleep(0.05)
            assert not task.done(), "the client stopped"

    try:
        await asyncio.wait_for(all_applied(), timeout=60)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return pipeline.tallies.totals(), ended + pipeline.tracker.open_calls()
