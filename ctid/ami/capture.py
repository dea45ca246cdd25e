"""Recorded AMI streams (``NAME.ami`` or ``NAME.ami.gz``) split into banner, login and events.

The split works on bytes and keeps every byte: ``banner + login_response + b"".join(raw of
events)`` is the file, so a replay sends exactly what the pbx sent.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

from ctid.errors import InputError

_FRAME_END = re.compile(rb"\r?\n\r?\n")
_TIMESTAMP = re.compile(rb"\nTimestamp:[ \t]*([0-9]+(?:\.[0-9]*)?)[ \t]*(?:\r?\n|$)")


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    """One frame as recorded, separator included, with its ``Timestamp:`` header if any."""

    raw: bytes
    timestamp: float | None


@dataclass(frozen=True, slots=True)
class Capture:
    """One AMI TCP connection as recorded: greeting, login response, then events."""

    banner: bytes
    login_response: bytes
    events: list[RecordedFrame]
    name: str = ""

    def to_bytes(self) -> bytes:
        """The recorded stream, byte for byte."""
        return self.banner + self.login_response + b"".join(f.raw for f in self.events)


def load_capture(path: str | Path) -> Capture:
    """Read a capture file (blocking: call it before the event loop or via ``to_thread``)."""
    path = Path(path)
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError) as err:
        raise InputError(f"cannot read capture {path}: {err}") from err
    name = path.name.removesuffix(".gz").removesuffix(".ami")
    return parse_capture(data, name=name)


def parse_capture(data: bytes, *, name: str = "") -> Capture:
    """Split a recorded stream; raise :class:`InputError` if it does not look like AMI."""
    end = data.find(b"\n") + 1
    banner = data[:end]
    if not banner.startswith(b"Asterisk Call Manager/"):
        raise InputError(f"capture {name or '?'}: does not start with an AMI banner")
    frames = split_frames(data[end:])
    if not frames or not frames[0].startswith(b"Response:"):
        raise InputError(f"capture {name or '?'}: no login response after the banner")
    events = [RecordedFrame(raw, frame_timestamp(raw)) for raw in frames[1:]]
    return Capture(banner=banner, login_response=frames[0], events=events, name=name)


def split_frames(data: bytes) -> list[bytes]:
    """Cut ``data`` after each blank line; a trailing partial frame is kept as the last item.

    A pbx killed mid-write leaves such a fragment; keeping it preserves byte-exactness.
    """
    frames: list[bytes] = []
    start = 0
    for match in _FRAME_END.finditer(data):
        frames.append(data[start : match.end()])
        start = match.end()
    if start < len(data):
        frames.append(data[start:])
    return frames


def frame_timestamp(raw: bytes) -> float | None:
    """The value of the ``Timestamp:`` header, found without decoding the frame."""
    match = _TIMESTAMP.search(raw)
    return float(match.group(1)) if match else None
