"""Capture files split into banner, login response and events without losing a byte."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ctid.ami.capture import (
    Capture,
    RecordedFrame,
    frame_timestamp,
    load_capture,
    parse_capture,
)
from ctid.errors import InputError

CAPTURES = Path(__file__).parent / "captures"
CAPTURE_FILES = sorted(CAPTURES.glob("*.ami.gz"))
TRUTH_FILES = sorted(CAPTURES.glob("*.truth.json.gz"))


def test_every_capture_is_found() -> None:
    assert len(CAPTURE_FILES) == 26


@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: p.name)
def test_split_is_byte_exact(path: Path) -> None:
    data = gzip.decompress(path.read_bytes())
    capture = load_capture(path)
    joined = capture.banner + capture.login_response + b"".join(f.raw for f in capture.events)
    assert joined == data
    assert capture.to_bytes() == data
    assert capture.banner == b"Asterisk Call Manager/11.0.0\r\n"
    assert capture.login_response.startswith(b"Response: Success\r\n")
    assert all(f.raw.startswith(b"Event: ") for f in capture.events)
    assert all(f.raw.endswith(b"\r\n\r\n") for f in capture.events)
    assert all(f.raw.count(b"\r\n\r\n") == 1 for f in capture.events)


@pytest.mark.parametrize("path", TRUTH_FILES, ids=lambda p: p.name)
def test_event_count_matches_truth(path: Path) -> None:
    truth = json.loads(gzip.decompress(path.read_bytes()))
    captures = [load_capture(CAPTURES / f"{name}.gz") for name in truth["capture_files"]]
    assert sum(len(c.events) for c in captures) == truth["event_count"]


@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: p.name)
def test_only_fully_booted_may_lack_a_timestamp(path: Path) -> None:
    capture = load_capture(path)
    untimed = [f.raw.split(b"\r\n", 1)[0] for f in capture.events if f.timestamp is None]
    assert set(untimed) <= {b"Event: FullyBooted"}
    timed = [f for f in capture.events if f.timestamp is not None]
    assert timed
    assert all(1.7e9 < (f.timestamp or 0) < 1.9e9 for f in timed)


def test_first_part_fully_booted_has_no_timestamp() -> None:
    capture = load_capture(CAPTURES / "busy.ami.gz")
    first = capture.events[0]
    assert first.raw.startswith(b"Event: FullyBooted\r\n")
    assert first.timestamp is None
    assert capture.events[1].timestamp == pytest.approx(1795429885.007131)


def test_plain_file_loads_like_gzip(tmp_path: Path) -> None:
    gz = CAPTURES / "busy.ami.gz"
    plain = tmp_path / "busy.ami"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    assert load_capture(plain) == load_capture(gz)
    assert load_capture(plain).name == "busy"


def test_trailing_partial_frame_is_kept() -> None:
    data = (
        b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n\r\n"
        b"Event: A\r\nTimestamp: 10.5\r\n\r\nEvent: B\r\nTimest"
    )
    capture = parse_capture(data, name="cut")
    assert capture.events == [
        RecordedFrame(b"Event: A\r\nTimestamp: 10.5\r\n\r\n", 10.5),
        RecordedFrame(b"Event: B\r\nTimest", None),
    ]
    assert capture.to_bytes() == data


def test_loose_separators_are_split_byte_exact() -> None:
    data = b"Asterisk Call Manager/11.0.0\nResponse: Success\n\nEvent: A\nTimestamp: 1\n\n"
    capture = parse_capture(data)
    assert capture.events == [RecordedFrame(b"Event: A\nTimestamp: 1\n\n", 1.0)]
    assert capture.to_bytes() == data


def test_timestamp_header_must_start_a_line() -> None:
    assert frame_timestamp(b"Event: X\r\nVariable: Timestamp: 5\r\n\r\n") is None
    assert frame_timestamp(b"Event: X\r\nTimestamp: 5.25\r\n\r\n") == 5.25


@pytest.mark.parametrize(
    "data",
    [b"", b"HTTP/1.1 200 OK\r\n\r\n", b"Asterisk Call Manager/11.0.0\r\nEvent: X\r\n\r\n"],
)
def test_not_a_capture_is_an_input_error(data: bytes) -> None:
    with pytest.raises(InputError):
        parse_capture(data)


def test_missing_or_corrupt_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read capture"):
        load_capture(tmp_path / "nope.ami")
    broken = tmp_path / "broken.ami.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match="cannot read capture"):
        load_capture(broken)


def test_capture_is_frozen() -> None:
    capture = Capture(banner=b"b", login_response=b"r", events=[])
    with pytest.raises(AttributeError):
        capture.banner = b"x"  # type: ignore[misc]
