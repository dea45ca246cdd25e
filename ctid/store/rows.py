"""What the store keeps, as plain rows: tracker effects, CDRs and AMI gaps → ``StoreRow``.

Row values are JSON types only (times as epoch seconds), so a row can wait in memory, go to
the spool file and come back unchanged; :class:`ctid.store.schema.UtcTimestamp` turns the
epoch seconds into timestamps when the row is written.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from ctid.ami.events import CdrWritten
from ctid.tracker.model import Call, CallEnded, Effect, InternalCallPlaced, InternalTalk, Segment

ZONE_STEP_S = 900
"""PBX clocks are offset from UTC by whole quarter hours (India +5:30, Nepal +5:45)."""


class StoreRow(NamedTuple):
    table: str
    values: dict[str, Any]


TABLE_ORDER = (
    "calls",
    "call_segments",
    "internal_talk",
    "internal_calls",
    "cdrs",
    "gaps",
    "policy_versions",
    "quota_adjustments",
    "violations",
    "daily_tallies",
)
"""Write order inside one transaction: a call before its segments (foreign key)."""


def rows_for_effect(effect: Effect) -> list[StoreRow]:
    if isinstance(effect, CallEnded):
        return call_rows(effect.call)
    if isinstance(effect, InternalTalk):
        return [
            StoreRow(
                "internal_talk",
                {
                    "pbx": effect.pbx,
                    "seat": effect.seat,
                    "started_at": effect.start,
                    "ended_at": effect.end,
                    "seconds": effect.end - effect.start,
                },
            )
        ]
    if isinstance(effect, InternalCallPlaced):
        values = {
            "pbx": effect.pbx,
            "seat": effect.seat,
            "placed_at": effect.ts,
            "target_seat": effect.target_seat,
        }
        return [StoreRow("internal_calls", values)]
    return []  # OutboundDial: a policy matter, the call row follows when it ends


def call_rows(call: Call, *, backfilled: bool = False) -> list[StoreRow]:
    row = {
        "pbx": call.pbx,
        "linkedid": call.linkedid,
        "direction": str(call.direction),
        "kind": "fax" if call.fax else "voice",
        "seat": call.seat,
        "placed_by": call.placed_by,
        "remote": call.remote,
        "started_at": call.started_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "outcome": str(call.outcome) if call.outcome is not None else None,
        "cause": call.cause,
        "ring_seconds": call.ring_seconds,
        "talk_seconds": call.talk_seconds,
        "hold_seconds": call.hold_seconds,
        "interrupted": call.interrupted,
        "backfilled": backfilled,
    }
    segments = [_segment_row(call, s) for s in call.segments.values()]
    return [StoreRow("calls", row), *segments]


def _segment_row(call: Call, segment: Segment) -> StoreRow:
    ends = [b for _, b in segment.talk_intervals] + [b for _, b in segment.hold_intervals]
    values = {
        "pbx": call.pbx,
        "linkedid": call.linkedid,
        "seat_channel": segment.seat_channel,
        "ext_channel": segment.ext_channel,
        "seat": segment.seat,
        "talk_seconds": segment.talk_seconds,
        "hold_seconds": segment.hold_seconds,
        "started_at": segment.start,
        "ended_at": max(ends) if ends else None,
        "talk_intervals": [[a, b] for a, b in segment.talk_intervals],
        "hold_intervals": [[a, b] for a, b in segment.hold_intervals],
    }
    return StoreRow("call_segments", values)


def cdr_row(pbx: str, cdr: CdrWritten) -> StoreRow:
    """A ``Cdr`` event as a row, its local wall-clock times turned into UTC instants."""
    offset = pbx_utc_offset(cdr.end_time, cdr.ts)
    values = {
        "pbx": pbx,
        "uniqueid": cdr.uniqueid,
        "seq": cdr.sequence or f"t{cdr.ts:.6f}",
        "linkedid": cdr.linkedid or cdr.uniqueid,
        "channel": cdr.channel,
        "dest_channel": cdr.dest_channel,
        "disposition": cdr.disposition,
        "billsec": cdr.billsec,
        "duration": cdr.duration,
        "started_at": _instant(cdr.start_time, offset),
        "answered_at": _instant(cdr.answer_time, offset),
        "ended_at": _instant(cdr.end_time, offset),
        "posted_at": cdr.ts,
    }
    return StoreRow("cdrs", values)


def gap_row(pbx: str, started_at: float, ended_at: float | None) -> StoreRow:
    """An AMI gap: nothing the PBX did in ``[started_at, ended_at)`` reached ctid."""
    return StoreRow("gaps", {"pbx": pbx, "started_at": started_at, "ended_at": ended_at})


def pbx_utc_offset(end_time: str, posted_at: float) -> float | None:
    """Seconds the PBX's wall clock is ahead of UTC, from a CDR's ``EndTime``.

    cdr_manager posts a CDR as the call ends, so ``EndTime`` (local, no zone) and the event's
    ``Timestamp`` (epoch) name nearly the same instant; rounding their difference to a quarter
    hour gives the zone offset, whatever the PBX's time zone (delays under 7.5 min are fine).
    """
    local = naive_seconds(end_time)
    if local is None:
        return None
    return round((local - posted_at) / ZONE_STEP_S) * ZONE_STEP_S


def _instant(text: str, offset: float | None) -> float | None:
    local = naive_seconds(text)
    return None if local is None or offset is None else local - offset


def naive_seconds(text: str) -> float | None:
    """``2026-11-23 10:38:56`` (a CDR time) → epoch seconds as if UTC; ``None`` for empty or
    other text. Runs for every CDR: ``fromisoformat`` is about six times faster than strptime."""
    if len(text) != 19 or text[10] != " ":
        return None
    try:
        naive = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return naive.replace(tzinfo=dt.UTC).timestamp()
