"""Calls rebuilt from the PBX's CDR rows (``Master.csv``), for the ones ctid missed.

Pure: rows in, :class:`Call` objects out.  What the rows tell:

* which rows are one call: those of one linkedid; without a linkedid column, those of one
  uniqueid, joined with rows that share a trunk channel while their times touch (a
  transfer's second leg has a uniqueid of its own);
* an *external* call has a seat↔trunk row; others (seat↔seat, a fax with no seat) are left
  out, as ctid does not count them as customer calls either;
* direction: *inbound* when the trunk is party A of the earliest row with a trunk (the PBX
  was called), *outbound* when a seat or the PBX dialled it;
* talk: each ``ANSWERED`` seat↔trunk row is a segment of ``billsec`` seconds ending with the
  row.  billsec includes hold, and ring time for queue, transfer and click-to-call legs
  (docs/store.md, "Reconciliation"), so a backfilled call's talk is an upper bound;
* outcome from the dispositions; the number from ``src`` (inbound) or ``dst`` (outbound).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ctid.store.master_csv import CsvCdr
from ctid.tracker.endpoints import EndpointDirectory, PartyKind
from ctid.tracker.model import Call, Direction, Outcome, Segment

_OUTBOUND_OUTCOMES = {
    "BUSY": Outcome.BUSY,
    "CONGESTION": Outcome.CONGESTION,
    "FAILED": Outcome.FAILED,
}
PAIR_SLACK_S = (1.0, 2.0)
"""A stored segment matches a row by channels when it ended this close to the row's span."""

KnownPairs = Mapping[frozenset[str], Sequence[tuple[float, str]]]
"""Stored segments by their two channels: (ended at, linkedid of their call)."""


@dataclass(frozen=True, slots=True)
class CsvCall:
    key: str
    """The linkedid, else the earliest row's uniqueid (ctid's id for the call)."""
    rows: tuple[CsvCdr, ...]

    @property
    def end(self) -> float:
        return max(r.end for r in self.rows)

    def ids(self) -> set[str]:
        return {self.key} | {v for r in self.rows for v in (r.linkedid, r.uniqueid) if v}


def external_calls(rows: Iterable[CsvCdr], directory: EndpointDirectory) -> list[CsvCall]:
    """The rows grouped into calls, keeping those with a seat↔trunk row."""
    ordered = sorted(rows, key=lambda r: (r.start, r.end))
    groups: dict[str, list[CsvCdr]] = {}
    for row in ordered:
        key = row.linkedid or row.uniqueid or f"{row.channel}@{row.start:.0f}"
        groups.setdefault(key, []).append(row)
    keyed = list(groups.items())
    if not all(row.linkedid for row in ordered):
        keyed = _join_by_trunk(keyed, directory)
    return [
        CsvCall(key, tuple(group))
        for key, group in keyed
        if any(_seat_trunk(r, directory) for r in group)
    ]


def _join_by_trunk(
    groups: list[tuple[str, list[CsvCdr]]], directory: EndpointDirectory
) -> list[tuple[str, list[CsvCdr]]]:
    """Without linkedids: a group whose trunk channel was in an earlier group still running
    then (names repeat only after a PBX restart) is that call's next leg."""
    joined: list[tuple[str, list[CsvCdr]]] = []
    by_trunk: dict[str, list[CsvCdr]] = {}
    for key, group in sorted(groups, key=lambda item: item[1][0].start):
        target: list[CsvCdr] | None = None
        for channel in _trunk_channels(group, directory):
            earlier = by_trunk.get(channel)
            if earlier is not None and group[0].start <= max(r.end for r in earlier) + 1:
                target = earlier
        if target is None:
            joined.append((key, group))
            target = group
        else:
            target.extend(group)
        for channel in _trunk_channels(group, directory):
            by_trunk[channel] = target
    return joined


def known_linkedid(
    call: CsvCall, offset: float, ids: Collection[str], pairs: KnownPairs
) -> str | None:
    """The stored call this one is, by id or (no linkedid column) by channels and time."""
    for value in sorted(call.ids()):
        if value in ids:
            return value
    low_slack, high_slack = PAIR_SLACK_S
    for row in call.rows:
        for ended_at, linkedid in pairs.get(frozenset((row.channel, row.dstchannel)), ()):
            if row.start - offset - low_slack <= ended_at <= row.end - offset + high_slack:
                return linkedid
    return None


def to_call(pbx: str, csv_call: CsvCall, directory: EndpointDirectory, offset: float) -> Call:
    """A backfilled call; ``offset`` is how far the PBX's wall clock is ahead of UTC."""
    rows = csv_call.rows
    first = min((r for r in rows if _trunk_channels([r], directory)), key=lambda r: r.start)
    inbound = directory.classify(first.channel).kind is PartyKind.TRUNK
    legs = [r for r in rows if _seat_trunk(r, directory)]
    answered = [r for r in legs if r.disposition == "ANSWERED"]
    call = Call(
        pbx=pbx,
        linkedid=csv_call.key,
        direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
        started_at=min(r.start for r in rows) - offset,
        remote=first.src if inbound else first.dst,
        placed_by=None if inbound else directory.classify(first.channel).seat,
        ended_at=csv_call.end - offset,
        answered_at=min((r.answer for r in answered if r.answer is not None), default=None),
        outcome=_outcome(inbound, legs, answered),
    )
    if call.answered_at is not None:
        call.answered_at -= offset
    for row in answered:
        _add_segment(call, row, directory, offset)
    return call


def _add_segment(call: Call, row: CsvCdr, directory: EndpointDirectory, offset: float) -> None:
    if row.billsec <= 0:
        return
    seat_party = directory.classify(row.channel)
    seat_channel, ext_channel = row.channel, row.dstchannel
    if seat_party.kind is not PartyKind.SEAT:
        seat_party = directory.classify(row.dstchannel)
        seat_channel, ext_channel = row.dstchannel, row.channel
    end = row.end - offset
    key = (seat_channel, ext_channel)
    segment = call.segments.get(key)
    if segment is None:
        segment = Segment(seat_party.seat or seat_party.endpoint, seat_channel, ext_channel)
        call.segments[key] = segment
    segment.talk_seconds += row.billsec
    segment.talk_intervals += ((end - row.billsec, end),)


def _outcome(inbound: bool, legs: Sequence[CsvCdr], answered: Sequence[CsvCdr]) -> Outcome:
    if answered:
        return Outcome.ANSWERED
    if inbound:
        return Outcome.ABANDONED
    return _OUTBOUND_OUTCOMES.get(legs[0].disposition, Outcome.NO_ANSWER)


def _seat_trunk(row: CsvCdr, directory: EndpointDirectory) -> bool:
    channels = (row.channel, row.dstchannel)
    kinds = {directory.classify(c).kind if c else PartyKind.OTHER for c in channels}
    return kinds == {PartyKind.SEAT, PartyKind.TRUNK}


def _trunk_channels(rows: Iterable[CsvCdr], directory: EndpointDirectory) -> list[str]:
    return [
        channel
        for row in rows
        for channel in (row.channel, row.dstchannel)
        if channel and directory.classify(channel).kind is PartyKind.TRUNK
    ]
