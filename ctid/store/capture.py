"""Recorded AMI captures as store rows: what ``ctid reconcile FILE...`` writes.

The tracker ignores ``Cdr`` events, so they are read in a second, cheap pass over the bytes
(the codec skips every other event by name).  Between two files of one capture the AMI link
was down; that stretch becomes a gap row, as the daemon records it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ctid.ami.codec import AmiCodec, Message
from ctid.ami.events import CdrWritten, normalize
from ctid.errors import AmiProtocolError, InputError
from ctid.replay import ReplayResult, replay_streams
from ctid.store.rows import StoreRow, cdr_row, gap_row, rows_for_effect
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Effect

_TIMESTAMP = re.compile(rb"\nTimestamp: *([0-9]+(?:\.[0-9]*)?)")


@dataclass
class CaptureRows:
    replay: ReplayResult
    units: list[list[StoreRow]] = field(default_factory=list)
    """Rows grouped as the writer groups them: one call with its segments, one CDR, ..."""
    cdrs: list[CdrWritten] = field(default_factory=list)


def capture_rows(
    streams: Sequence[bytes], *, pbx: str, directory: EndpointDirectory | None = None
) -> CaptureRows:
    units: list[list[StoreRow]] = []

    def keep(effect: Effect) -> None:
        rows = rows_for_effect(effect)
        if rows:
            units.append(rows)

    try:
        replay = replay_streams(streams, pbx=pbx, directory=directory, sinks=[keep])
        found = [event for data in streams for event in cdr_events(data)]
    except AmiProtocolError as err:
        raise InputError(f"not an AMI capture: {err}") from err
    out = CaptureRows(replay, units, found)
    out.units += [[cdr_row(pbx, cdr)] for cdr in found]
    out.units += [[row] for row in gap_rows(streams, pbx)]
    return out


def cdr_events(data: bytes) -> list[CdrWritten]:
    codec = AmiCodec(keep_events=frozenset({"Cdr"}))
    out: list[CdrWritten] = []
    for message in codec.feed(data):
        if isinstance(message, Message):
            event = normalize(message, 0.0)
            if isinstance(event, CdrWritten):
                out.append(event)
    return out


def gap_rows(streams: Sequence[bytes], pbx: str) -> list[StoreRow]:
    """One gap between each two successive connections: last frame → next first frame."""
    rows: list[StoreRow] = []
    for before, after in itertools.pairwise(streams):
        last = _TIMESTAMP.match(before, max(0, before.rfind(b"\nTimestamp:")))
        first = _TIMESTAMP.search(after)
        if last and first:
            rows.append(gap_row(pbx, float(last.group(1)), float(first.group(1))))
    return rows
