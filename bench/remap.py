"""Turn one recorded AMI capture into many independent copies of itself, for load tests.

Copy ``k`` of a capture is the same traffic on other seats and other calls: seat endpoints
``10NN`` become five-digit seat ids, and every uniqueid/linkedid, channel name and bridge id
gets a per-copy mark, so copies interleaved on one AMI link never share a call, a channel or a
bridge.  Timestamps stay as recorded: interleaved copies are simultaneous calls.

Pure bytes in, bytes out (no decoding: a UTF-8 name split by nothing here stays intact).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from ctid.ami.capture import parse_capture

SEATS_PER_COPY_LIMIT = 99
"""Endpoints 1001..1099 are seats in the lab captures; each copy gets 100 seat ids."""
MAX_COPIES = 900
"""Copy ``k`` maps seat ``10NN`` to ``10000 + 100*k + NN``: five digits up to copy 899."""

_PATTERN = re.compile(
    rb"(?P<uid>\b[A-Za-z0-9_]+-)(?P<epoch>[0-9]{10}\.[0-9]+)\b"  # uniqueid / linkedid
    rb"|/(?P<chan>[A-Za-z0-9_@.]+)-(?P<seq>[0-9a-f]{8})\b"  # channel name sequence suffix
    rb"|(?P<uuid>\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b)"  # bridge
    rb"|(?<![\w.])10(?P<seat>0[1-9]|[1-9][0-9])(?![\w.])"  # seat endpoint 1001..1099
)
_MARK = b"\0M\0"
_COPY_TAG = b"\0C\0"
_SEAT = re.compile(rb"(?<![\w.])10(0[1-9]|[1-9][0-9])(?![\w.])")


def seat_id(copy: int, endpoint: int) -> str:
    """The seat id that endpoint ``endpoint`` (1001..1099) of the capture has in ``copy``."""
    return str(10_000 + 100 * copy + endpoint - 1000)


def remap(data: bytes, copy: int) -> bytes:
    """Copy ``copy`` of a capture's bytes (copy 0 is remapped too: every copy looks alike)."""
    return fill(template(data), copy)


def template(data: bytes) -> bytes:
    """``data`` with a NUL-delimited placeholder wherever a copy differs (see :func:`fill`).

    The regex pass is the slow part (~0.5 s for 7.5 MB); filling a template is a few
    ``bytes.replace`` calls, so many copies cost one pass.  AMI text never contains NUL.
    """

    def replace(match: re.Match[bytes]) -> bytes:
        if (uid := match.group("uid")) is not None:
            return uid[:-1] + _COPY_TAG + b"-" + match.group("epoch")
        if (chan := match.group("chan")) is not None:
            endpoint = _SEAT.sub(lambda m: _seat_slot(m.group(1)), chan)
            return b"/" + endpoint + b"-" + _MARK + match.group("seq")
        if (uuid := match.group("uuid")) is not None:
            return _MARK + uuid
        return _seat_slot(match.group("seat"))

    if b"\0" in data:
        raise ValueError("a capture with NUL bytes cannot be templated")
    return _PATTERN.sub(replace, data)


def fill(pattern: bytes, copy: int) -> bytes:
    """Copy ``copy`` of a :func:`template`."""
    if not 0 <= copy < MAX_COPIES:
        raise ValueError(f"copy must be in 0..{MAX_COPIES - 1}, not {copy}")
    values = {_MARK[1:-1]: f"{copy:04x}".encode(), _COPY_TAG[1:-1]: f"c{copy:03d}".encode()}
    values.update(
        (_seat_slot(f"{n:02d}".encode())[1:-1], seat_id(copy, 1000 + n).encode())
        for n in range(1, SEATS_PER_COPY_LIMIT + 1)
    )
    parts = pattern.split(b"\0")  # text, slot, text, slot, ..., text
    parts[1::2] = [values[slot] for slot in parts[1::2]]
    return b"".join(parts)


def _seat_slot(nn: bytes) -> bytes:
    return b"\0S" + nn + b"\0"


def copies(data: bytes, count: int) -> list[bytes]:
    """The event frames of ``count`` remapped copies, interleaved frame by frame.

    ``data`` is a whole capture (banner, login response, events); the banner and the login
    response are dropped, since the load generator answers the login itself.
    """
    pattern = template(data)
    first = parse_capture(fill(pattern, 0))
    # Every placeholder fills to the same width in every copy (4-hex mark, ``cNNN`` tag,
    # five-digit seat), so the frames of copy 0 give the cut points of all of them.
    start = len(first.banner) + len(first.login_response)
    bounds: list[tuple[int, int]] = []
    for frame in first.events:
        bounds.append((start, start + len(frame.raw)))
        start += len(frame.raw)
    per_copy: list[list[bytes]] = []
    for k in range(count):
        filled = fill(pattern, k)
        per_copy.append([filled[a:b] for a, b in bounds])
    return list(interleave(per_copy))


def interleave(streams: Sequence[Sequence[bytes]]) -> Iterator[bytes]:
    """Round robin over ``streams``: frame 0 of each, then frame 1 of each, ..."""
    longest = max((len(s) for s in streams), default=0)
    for i in range(longest):
        for stream in streams:
            if i < len(stream):
                yield stream[i]
