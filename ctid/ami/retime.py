"""Move a recorded AMI frame to another time, for the live demo.

The demo replays a capture recorded on another day, over and over; shifting its timestamps to
"now" makes today's tallies and wall-clock dashboards work, and shifting the epoch inside
uniqueids/linkedids (``pbx-1795429886.9``) keeps every pass's calls distinct.
"""

from __future__ import annotations

import re

_TIMESTAMP = re.compile(rb"(?m)^(Timestamp: *)([0-9]+(?:\.[0-9]*)?)")
_UNIQUEID = re.compile(rb"\b([A-Za-z0-9_]+-)([0-9]{10})(\.[0-9]+)\b")


def retime_frame(raw: bytes, offset: float) -> bytes:
    """Add ``offset`` seconds to the frame's ``Timestamp`` and to the epoch in its unique ids."""
    whole = int(offset)

    def stamp(match: re.Match[bytes]) -> bytes:
        return match.group(1) + f"{float(match.group(2)) + offset:.6f}".encode()

    def uniqueid(match: re.Match[bytes]) -> bytes:
        return match.group(1) + str(int(match.group(2)) + whole).encode() + match.group(3)

    return _UNIQUEID.sub(uniqueid, _TIMESTAMP.sub(stamp, raw))
