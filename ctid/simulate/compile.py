"""Compile a template's frames once into literal bytes and *slots*, so each call is a join.

A slot is a piece of a header value that differs from call to call: an identifier (uniqueid,
channel suffix, bridge or SIP dialog UUID, RTP SSRC), a seat, a seat's name, the customer's
number or name, a time, or a duration that grows when the call's talk is extended.  Which
header holds what is decided by the header's name (and for ``VarSet`` by the variable):
counters such as RTCP packet counts are never read as seat numbers, even when one is 1001.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ctid.simulate.frames import CRLF, FRAME_END, headers_of, parse_datetime

UID_PATTERN = r"(?<![\w.])pbx-[0-9]{10}\.[0-9]+(?![0-9])"
SUFFIX_PATTERN = r"(?<=[\w@.]-)[0-9a-f]{8}(?![0-9A-Za-z])"
UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_SSRC = re.compile(r"(?P<hex>\b0x[0-9a-f]{8}\b)|(?<=ssrc=)(?P<dec>[0-9]+)")

_TIME_KINDS = {
    "Timestamp": "EPOCH_FRAC",
    "SentNTP": "EPOCH_FRAC",
    "EventTV": "ISO_MS",
    "SessionTV": "ISO_MS",
    "EventTime": "DATETIME",
    "StartTime": "DATETIME",
    "AnswerTime": "DATETIME",
    "EndTime": "DATETIME",
    "LastCall": "EPOCH_INT",
    "LoginTime": "EPOCH_INT",
    "LastPause": "EPOCH_INT",
}
_MEASUREMENTS = frozenset(
    {
        "To",
        "From",
        "RTT",
        "MES",
        "SSRC",
        "PT",
        "ReportCount",
        "SentRTP",
        "SentPackets",
        "SentOctets",
    }
)
"""RTCP headers: addresses and counters (only their SSRCs are renamed)."""
_PLAIN_NUMBERS = frozenset(
    {"Priority", "DestPriority", "Sequence", "CallsTaken", "Count", "Position", "Cause"}
    | {"OriginalPosition", "TechCause", "ChannelState", "DestChannelState", "Uptime"}
    | {"LastReload", "PagesTransferred", "TransferRate", "Penalty", "InCall", "Status"}
    | {"Paused", "Wrapuptime", "Ringinuse", "BridgeNumChannels", "UsingPassword"}
    | {"EventVersion", "HoldTime", "RingTime", "TalkTime", "Duration", "BillableSeconds"}
)
"""Counters, states and queue timers: never identifiers."""
_SPANNING_VARIABLES = frozenset({"ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS"})
"""Dial() timers set when the dial ends: they grow with an extended talk."""
_PLAIN_VARIABLES = frozenset(
    {"RINGTIME", "RINGTIME_MS", "PROGRESSTIME", "PROGRESSTIME_MS", "QUEUEWAIT", "QUEUEWAIT_MS"}
    | {"QEHOLDTIME", "QUEUEPOSITION", "QEORIGINALPOS", "MEMBERCALLS", "MEMBERPENALTY"}
    | {"MEMBERLASTCALL", "FAXPAGES", "FAXBITRATE"}
)


class SlotKind(enum.Enum):
    UID = "uid"
    SUFFIX = "suffix"
    UUID = "uuid"
    SSRC_HEX = "ssrc_hex"
    SSRC_DEC = "ssrc_dec"
    SEAT = "seat"
    NAME = "name"
    NUMBER = "number"
    CUSTOMER_NAME = "customer_name"
    EPOCH_FRAC = "epoch_frac"
    EPOCH_INT = "epoch_int"
    ISO_MS = "iso_ms"
    DATETIME = "datetime"
    DURATION_S = "duration_s"
    DURATION_MS = "duration_ms"


@dataclass(frozen=True, slots=True)
class Slot:
    kind: SlotKind
    text: str
    """The template's value (``pbx-1795429816.0``, ``1001``, ``2026-11-23 10:30:16``)."""
    moves: bool = False
    """A time at or after the cut (shifted by the extra talk too); a duration that spans
    the cut (grows by it)."""
    epoch: int = 0
    """For wall-clock strings: their epoch second, parsed once here."""


@dataclass(frozen=True, slots=True)
class CompiledFrame:
    parts: tuple[int, ...]
    """Indexes into a call's table: the template's literals, then its slots' values."""
    timestamp: int
    """Index (into :attr:`CompiledTemplate.slots`) of the slot of this frame's ``Timestamp``."""


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    literals: tuple[bytes, ...]
    slots: tuple[Slot, ...]
    frames: tuple[CompiledFrame, ...]


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The template's own values to look for in identity headers."""

    seats: Sequence[str]
    names: Sequence[str]
    number: str | None = None
    customer_name: str | None = None
    """Renamed only when it is ``Customer`` plus the number's last four digits."""
    cut: int | None = None


def header_role(event: str, variable: str, key: str) -> str:
    """``time``, ``duration``, ``ssrc``, ``plain`` or ``identity`` for one header line."""
    if key in _TIME_KINDS:
        return "time"
    if (event == "Cdr" and key in ("Duration", "BillableSeconds")) or (
        event == "AgentComplete" and key == "TalkTime"
    ):
        return "duration"
    if event == "VarSet" and key == "Value":
        if variable in _SPANNING_VARIABLES:
            return "duration"
        if variable.startswith("RTPAUDIOQOS"):
            return "ssrc"
        if variable in _PLAIN_VARIABLES:
            return "plain"
    if key in _MEASUREMENTS or key.startswith("Report"):
        return "ssrc"
    if key in _PLAIN_NUMBERS or key == "Event":
        return "plain"
    return "identity"


def identity_pattern(words: Vocabulary) -> re.Pattern[str]:
    alternatives = [
        f"(?P<uuid>{UUID_PATTERN})",
        f"(?P<uid>{UID_PATTERN})",
        f"(?P<suffix>{SUFFIX_PATTERN})",
    ]
    if words.number:
        alternatives.append(f"(?P<number>(?<![0-9]){re.escape(words.number)}(?![0-9]))")
    if words.seats:
        seats = "|".join(re.escape(s) for s in words.seats)
        alternatives.append(f"(?P<seat>(?<![0-9])(?:{seats})(?![0-9]))")
    names = sorted(words.names, key=len, reverse=True)
    if names:
        alternatives.append("(?P<name>" + "|".join(re.escape(n) for n in names) + ")")
    if _renamed_customer(words):
        alternatives.append(f"(?P<customer_name>{re.escape(words.customer_name or '')})")
    return re.compile("|".join(alternatives))


def _renamed_customer(words: Vocabulary) -> bool:
    return bool(words.number) and words.customer_name == f"Customer {(words.number or '')[-4:]}"


_GROUP_KINDS = {
    "uuid": SlotKind.UUID,
    "uid": SlotKind.UID,
    "suffix": SlotKind.SUFFIX,
    "number": SlotKind.NUMBER,
    "seat": SlotKind.SEAT,
    "name": SlotKind.NAME,
    "customer_name": SlotKind.CUSTOMER_NAME,
    "hex": SlotKind.SSRC_HEX,
    "dec": SlotKind.SSRC_DEC,
}


class _Builder:
    def __init__(self, words: Vocabulary) -> None:
        self.words = words
        self.identity = identity_pattern(words)
        self.slots: dict[Slot, int] = {}
        self.literals: dict[bytes, int] = {}
        self.parts: list[tuple[bool, int]] = []
        """(is a slot, index) pairs of the frame being compiled."""
        self.literal: list[str] = []

    def text(self, text: str) -> None:
        self.literal.append(text)

    def slot(self, slot: Slot) -> int:
        self._flush()
        index = self.slots.setdefault(slot, len(self.slots))
        self.parts.append((True, index))
        return index

    def _flush(self) -> None:
        if self.literal:
            text = "".join(self.literal).encode()
            self.parts.append((False, self.literals.setdefault(text, len(self.literals))))
            self.literal = []

    def tokens(self, value: str, pattern: re.Pattern[str]) -> None:
        at = 0
        for match in pattern.finditer(value):
            self.text(value[at : match.start()])
            group = match.lastgroup or ""
            kind = _GROUP_KINDS[group]
            moves = kind is SlotKind.UID and self.after_cut(int(match.group()[4:14]))
            self.slot(Slot(kind, match.group(), moves))
            at = match.end()
        self.text(value[at:])

    def frame(self) -> list[tuple[bool, int]]:
        self._flush()
        parts, self.parts = self.parts, []
        return parts

    def after_cut(self, epoch: float) -> bool:
        return self.words.cut is not None and epoch >= self.words.cut


def compile_frames(frames: Sequence[bytes], words: Vocabulary) -> CompiledTemplate:
    """Compile a call's event frames (each ends with a blank line and has a Timestamp)."""
    builder = _Builder(words)
    compiled: list[tuple[list[tuple[bool, int]], int]] = []
    for raw in frames:
        text = raw.decode("utf-8")
        if not text.endswith(FRAME_END):
            raise ValueError(f"frame does not end with a blank line: {text[:40]!r}")
        headers = headers_of(raw)
        timestamp: int | None = None
        for line in text[: -len(FRAME_END)].split(CRLF):
            index = _compile_line(builder, line, headers)
            if line.startswith("Timestamp:"):
                timestamp = index
            builder.text(CRLF)
        builder.text(CRLF)
        if timestamp is None:
            raise ValueError(f"frame without a Timestamp: {text[:40]!r}")
        compiled.append((builder.frame(), timestamp))
    literals = tuple(sorted(builder.literals, key=builder.literals.__getitem__))
    slots = tuple(sorted(builder.slots, key=builder.slots.__getitem__))
    return CompiledTemplate(
        literals,
        slots,
        tuple(
            CompiledFrame(tuple(len(literals) + i if is_slot else i for is_slot, i in parts), at)
            for parts, at in compiled
        ),
    )


def _compile_line(builder: _Builder, line: str, headers: dict[str, str]) -> int | None:
    key, sep, rest = line.partition(":")
    if not sep:
        builder.text(line)
        return None
    value = rest.lstrip(" ")
    builder.text(line[: len(line) - len(value)])
    event, variable = headers.get("Event", ""), headers.get("Variable", "")
    role = header_role(event, variable, key)
    if role == "time" and value and value != "0":
        epoch = _epoch_of(key, value)
        kind = SlotKind[_TIME_KINDS[key]]
        return builder.slot(Slot(kind, value, builder.after_cut(epoch), int(epoch)))
    if role == "duration" and value:
        kind = SlotKind.DURATION_MS if variable.endswith("_MS") else SlotKind.DURATION_S
        spans = _spans_cut(kind, key, value, headers, builder.words)
        return builder.slot(Slot(kind, value, spans))
    if role == "ssrc":
        builder.tokens(value, _SSRC)
    elif role == "identity":
        builder.tokens(value, builder.identity)
    else:
        builder.text(value)
    return None


def _epoch_of(key: str, value: str) -> float:
    kind = _TIME_KINDS[key]
    if kind in ("EPOCH_FRAC", "EPOCH_INT"):
        return float(value)
    return parse_datetime(value[:19].replace("T", " "))


def _spans_cut(
    kind: SlotKind, key: str, value: str, headers: dict[str, str], words: Vocabulary
) -> bool:
    """Whether this duration runs across the cut, so that extra talk lengthens it."""
    cut = words.cut
    if cut is None:
        return False
    if headers.get("Event") == "Cdr":
        # Asterisk truncates both to whole seconds; the cut is a whole second, so adding
        # the extra seconds to the end keeps them exact.
        begin = headers["StartTime"] if key == "Duration" else headers.get("AnswerTime", "")
        if not begin:
            return False
        return parse_datetime(begin) < cut <= parse_datetime(headers["EndTime"])
    seconds = int(value) / (1000 if kind is SlotKind.DURATION_MS else 1)
    at = float(headers["Timestamp"])
    return at >= cut and at - seconds < cut
