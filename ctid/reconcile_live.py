"""The daemon's live CDR reconciliation: calls and ``Cdr`` events in, drift and completeness
metrics out (the ``ReconcileMetrics`` port).

One :class:`~ctid.store.live_reconcile.LiveMatcher` per PBX.  Time is the PBX's: every event
advances its matcher (one comparison unless something is due), and a timer on the loop
decides what settles while the PBX is quiet — it sleeps until the next deadline, never polls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import structlog

from ctid.ami.events import AmiEvent, CdrWritten
from ctid.pipeline import EventSink
from ctid.store.live_reconcile import SETTLE_S, LiveMatcher, StillOpen, cdr_record
from ctid.store.reconcile import (
    CallDrift,
    CdrRecord,
    PartyOf,
    Status,
    is_seat_trunk,
    party_of,
)
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Call, CallEnded, Effect

log = structlog.get_logger("ctid")

HOUSEKEEPING_S = 60.0
"""Wake at least this often, so the completeness window rolls on while nothing happens."""
BILLED = frozenset({Status.MATCH, Status.EXPLAINED, Status.DRIFT})
"""Results with a billed seat↔trunk CDR: the ones that have a drift to observe."""


class ReconcilePort(Protocol):
    def observe_drift(self, pbx: str, drift_seconds: float) -> None: ...
    def set_completeness(self, pbx: str, ratio: float) -> None: ...


OpenCalls = Callable[[str], Mapping[str, Call]]
"""pbx → the tracker's calls still in progress, by linkedid."""
PbxClock = Callable[[str], float]
"""pbx → its current time, estimated from the newest event."""


class LiveReconciler:
    def __init__(
        self,
        metrics: ReconcilePort,
        directories: Mapping[str, EndpointDirectory],
        *,
        open_calls: OpenCalls,
        pbx_now: PbxClock,
        settle_seconds: float = SETTLE_S,
    ) -> None:
        self.metrics = metrics
        self.matchers = {
            pbx: LiveMatcher(pbx, party_of(directory), settle_seconds=settle_seconds)
            for pbx, directory in directories.items()
        }
        self._open_calls = open_calls
        self._pbx_now = pbx_now
        self._wake = asyncio.Event()

    # --- sinks ------------------------------------------------------------------------------

    def effect_sink(self, effect: Effect) -> None:
        if isinstance(effect, CallEnded):
            matcher = self.matchers.get(effect.call.pbx)
            if matcher is not None:
                self._add(matcher, lambda: matcher.call_ended(effect.call))

    def event_sink(self, pbx: str) -> EventSink:
        """Sees each of the PBX's events before the tracker: CDRs in, PBX time forward."""
        matcher = self.matchers[pbx]

        def sink(event: AmiEvent) -> None:
            if isinstance(event, CdrWritten):
                record = cdr_record(pbx, event)
                self._add(matcher, lambda: matcher.cdr(record))
            if event.ts >= matcher.due:
                self._settle(matcher, event.ts)

        return sink

    def count_missed(self, pbx: str, ended_at: Sequence[float]) -> None:
        """External calls a backfill found that the event stream never showed."""
        matcher = self.matchers.get(pbx)
        if matcher is not None and ended_at:
            matcher.count_missed(ended_at)
            self._publish_completeness(matcher)

    def known_calls(self, pbx: str) -> set[str]:
        matcher = self.matchers.get(pbx)
        return matcher.known_calls() if matcher is not None else set()

    # --- time -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Decide what settles while the PBX sends nothing (after its last call, in a gap)."""
        while True:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_delay()):
                    await self._wake.wait()
            for pbx, matcher in self.matchers.items():
                # The link knows the PBX's clock once the PBX sent something: a call, a CDR.
                if matcher.pending or matcher.now > 0:
                    self._settle(matcher, self._pbx_now(pbx))

    def _next_delay(self) -> float:
        delay = HOUSEKEEPING_S
        for pbx, matcher in self.matchers.items():
            if matcher.pending:
                delay = min(delay, matcher.due - self._pbx_now(pbx))
        return max(0.0, delay)

    def _add(self, matcher: LiveMatcher, add: Callable[[], None]) -> None:
        idle = matcher.pending == 0
        add()
        if idle:  # the timer may be asleep for the housekeeping interval: new deadline
            self._wake.set()

    def _settle(self, matcher: LiveMatcher, now: float) -> None:
        calls = self._open_calls
        still_open = open_claim(lambda: calls(matcher.pbx), matcher.party)
        results = matcher.advance(now, still_open)
        for result in results:
            self._observe(result)
        self._publish_completeness(matcher)

    def _observe(self, result: CallDrift) -> None:
        if result.status in BILLED:
            self.metrics.observe_drift(result.pbx, result.drift)
        if result.flagged:
            log.warning(
                "cdr_mismatch",
                pbx=result.pbx,
                linkedid=result.linkedid,
                seat=result.seat,
                status=str(result.status),
                billsec=result.billsec,
                drift=round(result.drift, 3),
            )

    def _publish_completeness(self, matcher: LiveMatcher) -> None:
        ratio = matcher.share.ratio
        if ratio is not None:
            self.metrics.set_completeness(matcher.pbx, ratio)


def open_claim(open_calls: Callable[[], Mapping[str, Call]], party: PartyOf) -> StillOpen:
    """Whether a call still in progress may claim CDRs: by linkedid, or (a conference, a
    consultation) by a segment with their two channels."""

    def still_open(linkedid: str, records: Sequence[CdrRecord]) -> bool:
        calls = open_calls()
        if linkedid in calls:
            return True
        if not any(is_seat_trunk(r, party) for r in records):
            return False
        pairs = {frozenset((r.channel, r.dest_channel)) for r in records}
        return any(_pairs_of(call) & pairs for call in calls.values())  # rare: O(open calls)

    return still_open


def _pairs_of(call: Call) -> set[frozenset[str]]:
    return {frozenset((s.seat_channel, s.ext_channel)) for s in call.segments.values()}
