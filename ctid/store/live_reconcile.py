"""Live reconciliation: ended calls matched with the PBX's ``Cdr`` events as they arrive.

Pure (no I/O, no clock of its own): the daemon hands it ended calls, CDRs and the PBX time,
and gets back one :class:`CallDrift` per call from the same :func:`reconcile_call` that
``ctid reconcile`` uses, so a live result equals the offline one for the same CDRs.

cdr_manager posts a call's CDRs as its channels hang up: just before or just after ctid's
``CallEnded``, a conference's seat CDRs a few seconds later.  So each linkedid waits
``settle_seconds`` of PBX time after the last of its call or CDRs arrived, then is decided
and dropped:

* a call → its CDRs (by linkedid, plus those whose two channels are one of its segments,
  posted near it, as the offline matcher takes them) → :func:`reconcile_call`;
* CDRs that no call claimed wait while ``still_open`` says a live call may still claim them;
  otherwise, with a trunk channel, they are a ``MISSED`` result.

Completeness is counted in *external calls*: a call ctid decided that has a seat↔trunk CDR
is *seen*, a CDR linkedid with a seat↔trunk CDR and no ctid call is *missed*.  Calls without
a seat↔trunk CDR (a killed PBX's call, a fax, cdr_manager off) count neither way.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ctid.ami.events import CdrWritten
from ctid.store.reconcile import (
    CDR_WINDOW_S,
    DRIFT_TOLERANCE_S,
    CallDrift,
    CdrRecord,
    PartyOf,
    has_trunk,
    is_seat_trunk,
    missed,
    reconcile_call,
)
from ctid.store.rolling_share import COMPLETENESS_WINDOW_S, RollingShare
from ctid.store.rows import naive_seconds, pbx_utc_offset
from ctid.tracker.model import Call

SETTLE_S = 10.0
"""PBX seconds a linkedid waits after the last of its call or CDRs arrived."""
DECIDED_RETENTION_S = 600.0
"""How long a decided linkedid is remembered, so a CDR posted late is not called missed."""

StillOpen = Callable[[str, Sequence[CdrRecord]], bool]
"""(linkedid, its CDRs) → may a call that has not ended yet still claim them?"""


def never_open(_linkedid: str, _records: Sequence[CdrRecord]) -> bool:
    return False


def cdr_record(pbx: str, event: CdrWritten) -> CdrRecord:
    """A ``Cdr`` event as ``ctid reconcile`` reads it back from the store: its answer time
    turned into an instant with the PBX offset :func:`cdr_row` uses (only the two times
    needed are parsed: this runs for every CDR)."""
    offset = pbx_utc_offset(event.end_time, event.ts)
    answered = naive_seconds(event.answer_time)
    return CdrRecord(
        pbx=pbx,
        linkedid=event.linkedid or event.uniqueid,
        uniqueid=event.uniqueid,
        channel=event.channel,
        dest_channel=event.dest_channel,
        disposition=event.disposition,
        billsec=event.billsec,
        duration=event.duration,
        posted_at=event.ts,
        answered_at=None if answered is None or offset is None else answered - offset,
    )


@dataclass(slots=True)
class _Entry:
    linkedid: str
    deadline: float
    call: Call | None = None
    cdrs: list[CdrRecord] = field(default_factory=list)
    borrowed: dict[int, CdrRecord] = field(default_factory=dict)
    """CDRs of other linkedids whose channels are one of this call's segments."""
    claimed: bool = False
    """Its CDRs were taken by another linkedid's call."""


class LiveMatcher:
    """One PBX's ended calls and CDRs, each linkedid held until it settles.

    Every operation is O(1) but a decision (O(its CDRs)); pending linkedids are kept in
    deadline order, so :meth:`advance` only looks at the front.
    """

    def __init__(
        self,
        pbx: str,
        party: PartyOf,
        *,
        settle_seconds: float = SETTLE_S,
        window_seconds: float = COMPLETENESS_WINDOW_S,
        tolerance: float = DRIFT_TOLERANCE_S,
    ) -> None:
        self.pbx = pbx
        self.party = party
        self.settle_seconds = settle_seconds
        self.tolerance = tolerance
        self.now = 0.0
        """The newest PBX time seen: deadlines never move backwards."""
        self.share = RollingShare(window_seconds)
        self._pending: OrderedDict[str, _Entry] = OrderedDict()
        self._cdrs_by_pair: dict[frozenset[str], list[CdrRecord]] = {}
        self._calls_by_pair: dict[frozenset[str], set[str]] = {}
        self._decided: OrderedDict[str, tuple[float, bool]] = OrderedDict()
        """linkedid → (decided at, counted as seen)."""

    # --- input --------------------------------------------------------------------------

    def call_ended(self, call: Call) -> None:
        entry = self._touch(call.linkedid, call.ended_at or call.started_at)
        entry.call = call
        for pair in _pairs(call):
            self._calls_by_pair.setdefault(pair, set()).add(call.linkedid)
            for record in self._cdrs_by_pair.get(pair, ()):
                self._borrow(entry, record)

    def cdr(self, record: CdrRecord) -> None:
        entry = self._touch(record.linkedid, record.posted_at)
        entry.cdrs.append(record)
        pair = frozenset((record.channel, record.dest_channel))
        self._cdrs_by_pair.setdefault(pair, []).append(record)
        for linkedid in self._calls_by_pair.get(pair, ()):
            if linkedid != record.linkedid and self._borrow(self._pending[linkedid], record):
                self._touch(linkedid, record.posted_at)

    def count_missed(self, ended_at: Iterable[float]) -> None:
        """External calls found missing elsewhere (a backfill from the PBX's CDR file)."""
        for at in ended_at:
            self.share.add(at, self.now, missed=1)

    # --- time -----------------------------------------------------------------------------

    @property
    def due(self) -> float:
        """PBX time of the next decision (infinity when nothing waits)."""
        for entry in self._pending.values():
            return entry.deadline
        return float("inf")

    @property
    def pending(self) -> int:
        return len(self._pending)

    def known_calls(self) -> set[str]:
        """Linkedids of calls ctid ended recently (waiting or decided)."""
        waiting = {e.linkedid for e in self._pending.values() if e.call is not None}
        return waiting | set(self._decided)

    def advance(self, now: float, still_open: StillOpen = never_open) -> list[CallDrift]:
        """Decide every linkedid that settled by ``now``: one result per call, one
        ``MISSED`` per unclaimed trunk CDR linkedid."""
        self.now = max(self.now, now)
        out: list[CallDrift] = []
        while self._pending:
            entry = next(iter(self._pending.values()))
            if entry.deadline > self.now:
                break
            del self._pending[entry.linkedid]
            result = self._decide(entry, still_open)
            if result is not None:
                out.append(result)
        self._forget_decided()
        self.share.expire(self.now)
        return out

    # --- decisions --------------------------------------------------------------------------

    def _decide(self, entry: _Entry, still_open: StillOpen) -> CallDrift | None:
        if entry.call is not None:
            return self._decide_call(entry, entry.call)
        records = entry.cdrs
        earlier = self._decided.get(entry.linkedid)
        if earlier is not None:  # posted after its call was decided: too late to compare
            if not earlier[1] and self._is_external(records):
                self._decided[entry.linkedid] = (earlier[0], True)
                self.share.add(_last_posted(records), self.now, seen=1)
        elif not entry.claimed and has_trunk(records, self.party):
            if still_open(entry.linkedid, records):
                self._touch(entry.linkedid, self.now).cdrs = records
                return None
            if self._is_external(records):
                self.share.add(_last_posted(records), self.now, missed=1)
            self._unindex(records)
            return missed(self.pbx, entry.linkedid, records, self.party)
        self._unindex(records)
        return None

    def _decide_call(self, entry: _Entry, call: Call) -> CallDrift:
        found = {id(r): r for r in entry.cdrs} | entry.borrowed
        records = sorted(found.values(), key=lambda r: r.posted_at)
        result = reconcile_call(call, records, self.party, self.tolerance)
        external = self._is_external(records)
        if external:
            self.share.add(call.ended_at or call.started_at, self.now, seen=1)
        self._decided[call.linkedid] = (self.now, external)
        self._unindex(entry.cdrs)
        for pair in _pairs(call):
            waiting = self._calls_by_pair.get(pair)
            if waiting is not None:
                waiting.discard(call.linkedid)
                if not waiting:
                    del self._calls_by_pair[pair]
        return result

    # --- bookkeeping ------------------------------------------------------------------------

    def _touch(self, linkedid: str, at: float) -> _Entry:
        """The linkedid's entry, its deadline pushed to ``settle_seconds`` after ``at``."""
        deadline = max(self.now, at) + self.settle_seconds
        entry = self._pending.get(linkedid)
        if entry is None:
            entry = _Entry(linkedid, deadline)
            self._pending[linkedid] = entry
        else:
            entry.deadline = max(entry.deadline, deadline)
            self._pending.move_to_end(linkedid)
        return entry

    def _borrow(self, entry: _Entry, record: CdrRecord) -> bool:
        """Give a call a CDR of another linkedid matched by channels, if posted near it."""
        call = entry.call
        if call is None or record.linkedid == call.linkedid:
            return False
        low = call.started_at - CDR_WINDOW_S[0]
        high = (call.ended_at or call.started_at) + CDR_WINDOW_S[1]
        if not low <= record.posted_at <= high:
            return False
        entry.borrowed[id(record)] = record
        owner = self._pending.get(record.linkedid)
        if owner is not None:
            owner.claimed = True
        return True

    def _unindex(self, records: Iterable[CdrRecord]) -> None:
        for record in records:
            pair = frozenset((record.channel, record.dest_channel))
            kept = [r for r in self._cdrs_by_pair.get(pair, ()) if r is not record]
            if kept:
                self._cdrs_by_pair[pair] = kept
            else:
                self._cdrs_by_pair.pop(pair, None)

    def _forget_decided(self) -> None:
        horizon = self.now - DECIDED_RETENTION_S
        while self._decided:
            linkedid, (at, _) = next(iter(self._decided.items()))
            if at >= horizon:
                break
            del self._decided[linkedid]

    def _is_external(self, records: Iterable[CdrRecord]) -> bool:
        return any(is_seat_trunk(r, self.party) for r in records)


def _pairs(call: Call) -> list[frozenset[str]]:
    return [frozenset((s.seat_channel, s.ext_channel)) for s in call.segments.values()]


def _last_posted(records: Sequence[CdrRecord]) -> float:
    return max(r.posted_at for r in records)
