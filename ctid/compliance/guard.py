"""The compliance guard: a pure object from tracker effects and AMI events to decisions.

No I/O and no clock reads: times come from the events (``due(now)`` takes its ``now``), and
everything it consults lives in memory.  Adapters carry decisions out (:mod:`.enforcer`) and
write opt-outs to disk (:mod:`.service`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ctid.ami import events as ev
from ctid.compliance.abandon import AbandonRate, Breach
from ctid.compliance.decision import Action, Decision, Mode, Rule
from ctid.compliance.disclosure import DialledCall, DisclosureWatch
from ctid.compliance.frequency import FrequencyCaps
from ctid.compliance.hours import CallingHours
from ctid.compliance.numbers import normalise
from ctid.compliance.optout import OptOutList
from ctid.compliance.settings import ComplianceSettings
from ctid.privacy import mask_number
from ctid.tracker.model import CallEnded, Direction, Effect, OutboundDial
from ctid.tracker.tracker import CallTracker


@dataclass(frozen=True, slots=True)
class ChannelRef:
    name: str
    linkedid: str


ChannelLookup = Callable[[str, str], ChannelRef | None]
"""(pbx, uniqueid) → the live channel's name and linkedid, or None."""


def tracker_lookup(trackers: Mapping[str, CallTracker]) -> ChannelLookup:
    """A :data:`ChannelLookup` reading the trackers' live channels (one tracker per PBX)."""

    def lookup(pbx: str, uniqueid: str) -> ChannelRef | None:
        tracker = trackers.get(pbx)
        channel = tracker.channels.get(uniqueid) if tracker is not None else None
        return ChannelRef(channel.name, channel.linkedid) if channel is not None else None

    return lookup


class ComplianceGuard:
    def __init__(
        self, settings: ComplianceSettings, lookup: ChannelLookup, optouts: OptOutList | None = None
    ) -> None:
        self.settings = settings
        self._lookup = lookup
        region = settings.default_region
        self.optouts = optouts if optouts is not None else OptOutList(region)
        self._hours = CallingHours(settings.calling_hours, ZoneInfo(settings.site_timezone), region)
        self._caps = FrequencyCaps(settings.frequency.site, settings.frequency.seat)
        self._disclosure = DisclosureWatch(settings.disclosure.within_seconds)
        rate = settings.abandon_rate
        self._abandon = AbandonRate(rate.ceiling, rate.window_hours * 3600, rate.min_calls)
        self._queues: dict[tuple[str, str], str] = {}
        """(pbx, linkedid) → queue the caller abandoned, until the call ends."""

    # --- inputs ---------------------------------------------------------------------------

    def on_effect(self, effect: Effect) -> list[Decision]:
        if isinstance(effect, OutboundDial):
            return self._on_dial(effect)
        if isinstance(effect, CallEnded):
            return self._on_call_ended(effect)
        return []

    def on_event(self, event: ev.AmiEvent, pbx: str) -> list[Decision]:
        """Feed every event *before* the tracker applies it (a Hangup still finds its channel)."""
        if isinstance(event, ev.UserEventRaised):
            self._on_user_event(event, pbx)
        elif isinstance(event, ev.DialEnded) and event.status == "ANSWER":
            ref = self._lookup(pbx, event.dest_uniqueid)
            if ref is not None:
                self._disclosure.answered(pbx, ref.linkedid, event.ts)
        elif isinstance(event, ev.QueueAbandoned):
            ref = self._lookup(pbx, event.uniqueid)
            if ref is not None:
                self._queues[(pbx, ref.linkedid)] = event.queue
        return []

    def due(self, now: float) -> list[Decision]:
        """Timed rules: answered calls still without a disclosure at their deadline."""
        mode = self.settings.disclosure.mode
        within = self.settings.disclosure.within_seconds
        return [
            self._decision(
                Rule.DISCLOSURE,
                mode,
                call,
                call.answered_at + within if call.answered_at is not None else now,
                f"no disclosure within {within:g} s of the answer",
            )
            for call in self._disclosure.due(now)
        ]

    # --- rules ----------------------------------------------------------------------------

    def _on_dial(self, dial: OutboundDial) -> list[Decision]:
        if not dial.number:
            return []
        e164 = normalise(dial.number, self.settings.default_region)
        call = DialledCall(dial.pbx, dial.linkedid, dial.seat, dial.number, dial.caller_uniqueid)
        decisions = _one_action(
            [
                self._decision(rule, mode, call, dial.ts, why)
                for rule, mode, why in self._violations(dial, e164)
            ]
        )
        # A dial stopped by enforcement never reached the callee: it is not an attempt.
        if self.settings.frequency.mode is not Mode.OFF and not any(d.acts for d in decisions):
            self._caps.record(e164, dial.seat, dial.ts)
        if self.settings.disclosure.mode is not Mode.OFF:
            self._disclosure.dialled(call)
        return decisions

    def _violations(self, dial: OutboundDial, e164: str) -> list[tuple[Rule, Mode, str]]:
        s, number, ts = self.settings, dial.number, dial.ts
        checks: list[tuple[Rule, Mode, Callable[[], str | None]]] = [
            (Rule.DO_NOT_CALL, s.do_not_call.mode, lambda: _DNC if e164 in self.optouts else None),
            (Rule.CALLING_HOURS, s.calling_hours.mode, lambda: self._hours.violation(number, ts)),
            (Rule.FREQUENCY, s.frequency.mode, lambda: self._caps.violation(e164, dial.seat, ts)),
        ]
        # A rule that is off is not even evaluated: its state (counters) stays untouched.
        return [
            (rule, mode, why)
            for rule, mode, check in checks
            if mode is not Mode.OFF and (why := check()) is not None
        ]

    def _on_call_ended(self, effect: CallEnded) -> list[Decision]:
        call = effect.call
        self._disclosure.ended(call.pbx, call.linkedid)
        queue = self._queues.pop((call.pbx, call.linkedid), None)
        settings = self.settings.abandon_rate
        if settings.mode is Mode.OFF or call.direction is not Direction.INBOUND or call.fax:
            return []
        ended = call.ended_at if call.ended_at is not None else call.started_at
        breach = self._abandon.record(queue or settings.default_queue, ended, call.queue_abandoned)
        return [] if breach is None else [self._abandon_decision(call.pbx, ended, breach)]

    def _on_user_event(self, event: ev.UserEventRaised, pbx: str) -> None:
        if event.name == self.settings.do_not_call.optout_event:
            number = event.headers.get("Number", "").strip()
            if number:
                self.optouts.add(number, event.ts, source=f"dialplan:{pbx}")
        elif event.name == self.settings.disclosure.event:
            linkedid = event.headers.get("Linkedid")
            if not linkedid and event.uniqueid:
                ref = self._lookup(pbx, event.uniqueid)
                linkedid = ref.linkedid if ref is not None else None
            if linkedid:
                self._disclosure.disclosed(pbx, linkedid)

    # --- decisions ------------------------------------------------------------------------

    def _decision(
        self, rule: Rule, mode: Mode, call: DialledCall, ts: float, reason: str
    ) -> Decision:
        action = _ACTIONS[mode]
        uniqueid = call.caller_uniqueid
        ref = self._lookup(call.pbx, uniqueid) if uniqueid else None
        channel = ref.name if ref is not None else None
        if action is Action.HANGUP:
            action = Action(self.settings.enforcement.action)
            if channel is None:
                # The call is already gone (or never had a seat channel): nothing to stop.
                action, reason = Action.WARN, f"{reason}; no channel to act on"
        return Decision(
            rule, mode, action, call.pbx, ts, self.settings.version, call.seat,
            mask_number(call.number), reason, call.linkedid, uniqueid, channel,
        )  # fmt: skip

    def _abandon_decision(self, pbx: str, ts: float, breach: Breach) -> Decision:
        mode = self.settings.abandon_rate.mode
        # There is no single call to stop: enforce can only raise the alarm.
        action = Action.NONE if mode is Mode.OBSERVE else Action.WARN
        reason = (
            f"queue {breach.queue}: {breach.abandoned}/{breach.offered} abandoned "
            f"({breach.rate:.2%}) > ceiling {self.settings.abandon_rate.ceiling:.2%}"
        )
        return Decision(
            Rule.ABANDON_RATE, mode, action, pbx, ts, self.settings.version, None, "", reason
        )


_DNC = "on the do-not-call list"
_ACTIONS = {
    Mode.OBSERVE: Action.NONE,
    Mode.WARN: Action.WARN,
    Mode.ENFORCE: Action.HANGUP,
}


def _one_action(decisions: list[Decision]) -> list[Decision]:
    """Several enforced rules on one dial still mean a single Hangup: the first one acts."""
    out: list[Decision] = []
    acted = False
    for decision in decisions:
        if decision.acts and acted:
            decision = dataclasses.replace(
                decision, action=Action.NONE, reason=f"{decision.reason}; already being stopped"
            )
        acted = acted or decision.acts
        out.append(decision)
    return out
