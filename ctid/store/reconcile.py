"""Truth against the PBX: each ended call's talk time beside Asterisk's own CDRs.

Pure: calls and CDRs in, one :class:`CallDrift` per call out.

The CDR that measures a seat's conversation is the ``ANSWERED`` one between that seat's
channel and the trunk channel (either may be party A).  Its ``billsec`` is not talk time:

* it is truncated to whole seconds (12.9 s → 12);
* it includes hold — Asterisk bills a held call;
* it starts at the CDR's ``AnswerTime``, which is when *party A* answered.  When party A was
  up before the seat joined — inbound queue calls (the PBX answers before ``Queue()``), the
  new CDR after a blind transfer, click-to-call (the seat leg is party A) — billsec also
  holds the ring time between that answer and the seat's bridge.

So the comparison is made twice: ``raw_drift = billsec − talk`` (what a naive report would
show) and ``drift = billsec − expected`` with ``expected = talk + hold + ring``, where
``ring`` is, per matched CDR, how long before the seat's segment began the CDR was already
answered.  ``|drift| ≤ tolerance`` (2 s: one second of billsec truncation plus one of the
whole-second ``AnswerTime``) is agreement; beyond it the call is flagged.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ctid.tracker.endpoints import EndpointDirectory, PartyKind
from ctid.tracker.model import Call, Segment

DRIFT_TOLERANCE_S = 2.0
NOTABLE_S = 0.5
"""Hold or ring shorter than this is not worth naming as a reason."""
CDR_WINDOW_S = (5.0, 120.0)
"""A CDR matched by channels (not linkedid) must be posted this close to its call."""


class Status(enum.StrEnum):
    MATCH = "match"
    """billsec ≈ talk: nothing to explain."""
    EXPLAINED = "explained"
    """billsec differs from talk by hold and/or ring time, as the CDR rules predict."""
    DRIFT = "drift"
    """billsec and ctid disagree beyond the tolerance: flagged."""
    NO_TALK = "no_talk"
    """No seat talked and no seat↔trunk CDR was answered: both agree (includes faxes)."""
    NO_CDR = "no_cdr"
    """The PBX wrote no CDR for the call (killed PBX, or cdr_manager off)."""
    MISSED = "missed"
    """CDRs show a trunk call ctid has no record of (an AMI gap): flagged, a backfill case."""


@dataclass(frozen=True, slots=True)
class CdrRecord:
    pbx: str
    linkedid: str
    uniqueid: str
    channel: str
    dest_channel: str
    disposition: str
    billsec: int
    duration: int
    posted_at: float
    answered_at: float | None = None
    """UTC epoch seconds, truncated to whole seconds as the PBX wrote them."""


@dataclass(frozen=True, slots=True)
class CallDrift:
    pbx: str
    linkedid: str
    seat: str | None
    talk_seconds: float
    hold_seconds: float
    ring_seconds: float
    """Ring time estimated inside billsec (party A answered before the seat's segment)."""
    billsec: int
    cdrs: int
    status: Status
    reasons: tuple[str, ...] = ()
    tolerance: float = DRIFT_TOLERANCE_S

    @property
    def expected_billsec(self) -> float:
        return self.talk_seconds + self.hold_seconds + self.ring_seconds

    @property
    def raw_drift(self) -> float:
        return self.billsec - self.talk_seconds

    @property
    def drift(self) -> float:
        return self.billsec - self.expected_billsec

    @property
    def flagged(self) -> bool:
        return self.status in (Status.DRIFT, Status.MISSED)


PartyOf = Callable[[str], PartyKind]
_Pair = tuple[str, frozenset[str]]


class _CdrIndex:
    """CDRs by linkedid and by channel pair.

    A conference or a consultation gives the seat↔trunk CDR the *seat's* linkedid, not the
    customer call's, so the CDRs of a call are those of its linkedid plus those whose two
    channels are one of its segments (posted near the call: names repeat after a restart).
    """

    def __init__(self, records: Iterable[CdrRecord]) -> None:
        self.by_linkedid: dict[tuple[str, str], list[CdrRecord]] = {}
        self.by_pair: dict[_Pair, list[CdrRecord]] = {}
        for r in records:
            self.by_linkedid.setdefault((r.pbx, r.linkedid), []).append(r)
            pair = (r.pbx, frozenset((r.channel, r.dest_channel)))
            self.by_pair.setdefault(pair, []).append(r)
        self.claimed: set[tuple[str, str]] = set()

    def for_call(self, call: Call) -> list[CdrRecord]:
        found = {id(r): r for r in self.by_linkedid.get((call.pbx, call.linkedid), [])}
        low = call.started_at - CDR_WINDOW_S[0]
        high = (call.ended_at or call.started_at) + CDR_WINDOW_S[1]
        for s in call.segments.values():
            for r in self.by_pair.get((call.pbx, frozenset((s.seat_channel, s.ext_channel))), []):
                if low <= r.posted_at <= high:
                    found[id(r)] = r
        self.claimed |= {(r.pbx, r.linkedid) for r in found.values()}
        return sorted(found.values(), key=lambda r: r.posted_at)


def reconcile(
    calls: Iterable[Call],
    cdrs: Iterable[CdrRecord],
    directory: EndpointDirectory,
    *,
    tolerance: float = DRIFT_TOLERANCE_S,
) -> list[CallDrift]:
    """One result per call, plus one ``MISSED`` per unclaimed CDR linkedid with a trunk."""
    party = party_of(directory)
    index = _CdrIndex(cdrs)
    out = [reconcile_call(c, index.for_call(c), party, tolerance) for c in calls]
    for (pbx, linkedid), records in index.by_linkedid.items():
        if (pbx, linkedid) in index.claimed:
            continue
        if has_trunk(records, party):
            out.append(missed(pbx, linkedid, records, party))
    return out


def party_of(directory: EndpointDirectory) -> PartyOf:
    """What a CDR channel is; an empty one (no ``DestinationChannel``) is nobody."""

    def party(channel: str) -> PartyKind:
        return directory.classify(channel).kind if channel else PartyKind.OTHER

    return party


def has_trunk(records: Iterable[CdrRecord], party: PartyOf) -> bool:
    return any(PartyKind.TRUNK in (party(r.channel), party(r.dest_channel)) for r in records)


def reconcile_call(
    call: Call, cdrs: Sequence[CdrRecord], party: PartyOf, tolerance: float = DRIFT_TOLERANCE_S
) -> CallDrift:
    billed = [r for r in cdrs if r.disposition == "ANSWERED" and is_seat_trunk(r, party)]
    ring, reasons = _match_segments(call, cdrs, billed)
    result = CallDrift(
        call.pbx,
        call.linkedid,
        call.seat,
        call.talk_seconds,
        call.hold_seconds,
        ring,
        sum(r.billsec for r in billed),
        len(cdrs),
        Status.MATCH,
        # Each billsec is truncated on its own: every further CDR may lose another second.
        tolerance=tolerance + max(0, len(billed) - 1),
    )
    status = _classify(result, cdrs, billed, call, tolerance)
    reasons += _explain(status, call, ring)
    return dataclasses.replace(result, status=status, reasons=tuple(reasons))


def _match_segments(
    call: Call, cdrs: Sequence[CdrRecord], billed: Sequence[CdrRecord]
) -> tuple[float, list[str]]:
    """Pair billed CDRs with segments by their two channels: ring time inside billsec, and
    what could not be paired."""
    segments = {frozenset((s.seat_channel, s.ext_channel)): s for s in call.segments.values()}
    ring = 0.0
    reasons: list[str] = []
    for record in billed:
        segment = segments.pop(frozenset((record.channel, record.dest_channel)), None)
        if segment is None:
            reasons.append("cdr_without_talk")
        else:
            ring += _ring_in_billsec(record, segment)
    if cdrs and any(s.talk_seconds > 0 for s in segments.values()):
        reasons.append("talk_without_cdr")
    return ring, reasons


def _explain(status: Status, call: Call, ring: float) -> list[str]:
    if status is Status.EXPLAINED:
        notable = (("hold", call.hold_seconds), ("ring", ring))
        return [name for name, value in notable if value >= NOTABLE_S]
    if status is Status.NO_CDR and call.interrupted:
        return ["interrupted"]
    if status is Status.NO_TALK and call.fax:
        return ["fax"]
    return []


def _classify(
    result: CallDrift,
    cdrs: Sequence[CdrRecord],
    billed: Sequence[CdrRecord],
    call: Call,
    tolerance: float,
) -> Status:
    if not cdrs:
        return Status.NO_CDR
    if not billed and not call.segments:
        return Status.NO_TALK
    if abs(result.drift) > result.tolerance:
        return Status.DRIFT
    # Whether hold/ring had to be invoked is judged on the plain tolerance: a transfer's
    # allowance for two truncations must not hide the ring time in its second CDR.
    return Status.MATCH if abs(result.raw_drift) <= tolerance else Status.EXPLAINED


def _ring_in_billsec(record: CdrRecord, segment: Segment) -> float:
    """How long the CDR was answered before the seat's segment began.

    ``AnswerTime`` is truncated to the second, so a gap under one second may be truncation
    alone (a plain outbound call bridges the instant it is answered); a longer one is real
    ring time, best estimated from the middle of the truncated second.
    """
    start = segment.start
    if record.answered_at is None or start is None:
        return 0.0
    gap = start - record.answered_at
    return gap - 0.5 if gap >= 1.0 else 0.0


def is_seat_trunk(record: CdrRecord, party: PartyOf) -> bool:
    """A CDR between a seat and the trunk (either may be party A): a customer conversation."""
    kinds = {party(record.channel), party(record.dest_channel)}
    return kinds == {PartyKind.SEAT, PartyKind.TRUNK}


def missed(pbx: str, linkedid: str, records: Sequence[CdrRecord], party: PartyOf) -> CallDrift:
    """The result for CDRs of a trunk call that no ctid call claimed."""
    billed = [r for r in records if r.disposition == "ANSWERED" and is_seat_trunk(r, party)]
    billsec = sum(r.billsec for r in billed)
    return CallDrift(pbx, linkedid, None, 0.0, 0.0, 0.0, billsec, len(records), Status.MISSED)
