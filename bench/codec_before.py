"""ctid's ``AmiCodec`` as it was before its fast path (commit a322deb).

Kept so ``bench.pipeline`` measures before and after in one run, on one machine state; the
frame parser and message types are shared with :mod:`ctid.ami.codec` (unchanged), so the
client accepts what this codec returns.  Not used by ctid itself.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from ctid.ami.codec import BANNER_PREFIX, DEFAULT_MAX_FRAME, Banner, Message, parse_frame
from ctid.errors import AmiProtocolError

_CRLF2 = b"\r\n\r\n"
_LOOSE_SEPARATOR = re.compile(rb"\r?\n\r?\n")
_EVENT_PREFIX = b"Event: "
_TIMESTAMP = re.compile(rb"(?m)^Timestamp: *([0-9]+(?:\.[0-9]*)?)\r?$")


class AmiCodec:
    """Incremental decoder for one AMI connection.

    ``feed(data)`` returns the messages completed by ``data``.  With ``keep_events`` given,
    events whose name is not in it are dropped by looking at their first line only (no
    decoding, no header parsing): most of an Asterisk stream is VarSet/CEL/RTCP noise.
    ``expect_banner`` is True on the client side, False for a server reading actions.
    """

    def __init__(
        self,
        *,
        expect_banner: bool = True,
        keep_events: Collection[str] | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self._buffer = b""
        self._want_banner = expect_banner
        self._keep = None if keep_events is None else frozenset(e.encode() for e in keep_events)
        self._max_frame = max_frame
        self.frames_seen = 0
        self.frames_skipped = 0
        self._last_frame = b""

    def feed(self, data: bytes) -> list[Message | Banner]:
        buffer = self._buffer + data if self._buffer else data
        out: list[Message | Banner] = []
        if self._want_banner:
            end = buffer.find(b"\n")
            if end < 0:
                self._check_size(buffer)
                self._buffer = buffer
                return out
            out.append(self._banner(buffer[:end]))
            buffer = buffer[end + 1 :]
        chunks = buffer.split(_CRLF2)
        rest = chunks.pop()
        if b"\n\n" in rest or b"\n\r\n" in rest:
            loose = _LOOSE_SEPARATOR.split(rest)
            rest = loose.pop()
            chunks.extend(loose)
        # Blank lines before a frame mean nothing; dropping them keeps the pending bytes to
        # "start of one frame + at most 3 bytes of its separator", whatever the chunking.
        rest = rest.lstrip(b"\r\n")
        self._check_size(rest)
        self._buffer = rest
        for chunk in chunks:
            if b"\n\n" in chunk or b"\n\r\n" in chunk:
                for piece in _LOOSE_SEPARATOR.split(chunk):
                    self._emit(piece, out)
            else:
                self._emit(chunk, out)
        return out

    def _emit(self, chunk: bytes, out: list[Message | Banner]) -> None:
        chunk = chunk.strip(b"\r\n")
        if not chunk:
            return
        # The cap counts the terminator, so a frame that fits is never refused by _check_size
        # while its separator is still in flight (whether it does must not depend on chunking).
        if len(chunk) + len(_CRLF2) > self._max_frame:
            raise AmiProtocolError(f"frame of {len(chunk)} bytes exceeds {self._max_frame}")
        self.frames_seen += 1
        self._last_frame = chunk
        keep = self._keep
        if keep is not None and chunk.startswith(_EVENT_PREFIX):
            end = chunk.find(b"\n")
            # Strip like parse_frame does, so the filter never drops an event the parser would
            # have named as one we keep (``Event:  Hangup`` parses as ``Hangup``).
            name = chunk[7 : end if end >= 0 else len(chunk)].strip(b"\r ")
            if name not in keep:
                self.frames_skipped += 1
                return
        out.append(parse_frame(chunk))

    def last_frame_timestamp(self) -> float | None:
        """PBX ``Timestamp`` of the newest complete frame, skipped or not.

        Parsed lazily: after a crash the last thing the PBX proved is the time of its last
        frame, which is usually RTCP noise the filter dropped.
        """
        found = _TIMESTAMP.search(self._last_frame)
        return float(found.group(1)) if found else None

    def _banner(self, line: bytes) -> Banner:
        text = line.rstrip(b"\r").decode("utf-8", errors="replace")
        self._want_banner = False
        if not text.startswith(BANNER_PREFIX):
            raise AmiProtocolError(f"not an AMI server: greeting was {text[:60]!r}")
        return Banner(version=text[len(BANNER_PREFIX) :])

    def _check_size(self, pending: bytes) -> None:
        if len(pending) > self._max_frame:
            self._buffer = b""
            raise AmiProtocolError(
                f"no frame separator within {self._max_frame} bytes; peer is not speaking AMI"
            )
