"""Sans-IO AMI codec: bytes in, messages out.

Frames are split on the blank line in *bytes* first and decoded afterwards, so a UTF-8
character cut across two TCP reads survives.  ``\\r\\n\\r\\n`` is the normal separator;
``\\r\\n\\n`` and bare ``\\n\\n`` (sent by some actions and by hand-typed clients) are accepted
too.  No asyncio in here: the client, the replay server and the tests all drive it by hand.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from ctid.errors import AmiProtocolError

DEFAULT_MAX_FRAME = 64 * 1024
"""Largest frame accepted, counting its ``\\r\\n\\r\\n`` terminator.  Real Asterisk frames are
< 4 KiB; a runaway peer must not grow our buffer without bound."""

BANNER_PREFIX = "Asterisk Call Manager/"
_CRLF2 = b"\r\n\r\n"
_LOOSE_SEPARATOR = re.compile(rb"\r?\n\r?\n")
_EVENT_PREFIX = b"Event: "
_TIMESTAMP = re.compile(rb"(?m)^Timestamp: *([0-9]+(?:\.[0-9]*)?)\r?$")
_NAME_CACHE_SIZE = 1024


def _only_crlf_separators(buffer: bytes) -> bool:
    """True if every newline in ``buffer`` is part of a ``\\r\\n``.

    Then no piece of ``buffer.split(b"\\r\\n\\r\\n")`` holds a loose separator (``\\n\\n`` or
    ``\\n\\r\\n``): both need a bare ``\\n``, or a ``\\r\\n\\r\\n`` the split already cut at.
    Two fast scans of the whole buffer instead of two substring searches per frame.
    """
    return buffer.count(b"\n") == buffer.count(b"\r\n")


@dataclass(frozen=True, slots=True)
class Banner:
    """The greeting line a server sends once on connect (``Asterisk Call Manager/11.0.0``)."""

    version: str


@dataclass(frozen=True, slots=True)
class Message:
    """One AMI frame.

    ``kind`` is the first header's key (``Event``, ``Response`` or ``Action``) and ``name`` its
    value.  Header keys keep the spelling the peer used; a repeated key (``Variable``,
    ``Output``) has its values joined with ``\\n``.
    """

    kind: str
    name: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.headers.get(key, default)

    @property
    def is_event(self) -> bool:
        return self.kind == "Event"

    @property
    def is_response(self) -> bool:
        return self.kind == "Response"


def parse_frame(raw: bytes) -> Message:
    """Decode one complete frame (without its separator) into a :class:`Message`."""
    text = raw.decode("utf-8", errors="replace")
    lines = text.split("\r\n") if "\r" in text else text.split("\n")
    headers: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if not sep:
            # Asterisk's Command responses can carry bare output lines; keep them, never fail.
            key, value = "Output", line
        value = value.lstrip(" ")
        if key in headers:
            headers[key] = f"{headers[key]}\n{value}"
        else:
            headers[key] = value
    first_key = next(iter(headers), "")
    if not first_key or first_key == "Output":
        raise AmiProtocolError(f"frame without a header line: {raw[:60]!r}")
    return Message(kind=first_key, name=headers[first_key], headers=headers)


def encode_message(kind: str, name: str, headers: Mapping[str, str] | None = None) -> bytes:
    """Serialise an action (or, for the replay server, a response or event) to wire bytes."""
    parts = [f"{kind}: {name}"]
    if headers:
        for key, value in headers.items():
            parts.extend(f"{key}: {line}" for line in str(value).split("\n"))
    return ("\r\n".join(parts) + "\r\n\r\n").encode("utf-8")


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
        self._name_cache: dict[bytes, bool] = {}
        """``Event:`` line remainders (``VarSet\\r``) already judged by ``keep_events``."""

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
        fast = _only_crlf_separators(buffer)
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
        if fast:
            self._emit_all(chunks, out)
            return out
        for chunk in chunks:
            if b"\n\n" in chunk or b"\n\r\n" in chunk:
                for piece in _LOOSE_SEPARATOR.split(chunk):
                    self._emit(piece, out)
            else:
                self._emit(chunk, out)
        return out

    def _emit_all(self, chunks: list[bytes], out: list[Message | Banner]) -> None:
        """:meth:`_emit` for every chunk, inlined: this loop runs once per frame on the wire.

        Only for chunks without loose separators (see :func:`_only_crlf_separators`).
        """
        keep = self._keep
        names = self._name_cache
        limit = self._max_frame - len(_CRLF2)
        seen = skipped = 0
        last = self._last_frame
        try:
            for chunk in chunks:
                chunk = chunk.strip(b"\r\n")
                if not chunk:
                    continue
                if len(chunk) > limit:
                    raise AmiProtocolError(f"frame of {len(chunk)} bytes exceeds {self._max_frame}")
                seen += 1
                last = chunk
                if keep is not None and chunk.startswith(_EVENT_PREFIX):
                    end = chunk.find(b"\n", 7)
                    raw = chunk[7 : end + 1] if end >= 0 else chunk[7:]  # distinct keys
                    kept = names.get(raw)
                    if kept is None:
                        kept = self._keeps(chunk)
                        if len(names) < _NAME_CACHE_SIZE:
                            names[raw] = kept
                    if not kept:
                        skipped += 1
                        continue
                out.append(parse_frame(chunk))
        finally:
            self.frames_seen += seen
            self.frames_skipped += skipped
            self._last_frame = last

    def _keeps(self, chunk: bytes) -> bool:
        """Whether the event frame ``chunk`` passes ``keep_events``; as in :meth:`_emit`."""
        assert self._keep is not None
        end = chunk.find(b"\n")
        return chunk[7 : end if end >= 0 else len(chunk)].strip(b"\r ") in self._keep

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
