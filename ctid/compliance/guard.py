"""The compliance guard: a pure object from tracker effects and AMI events to decisions.

No I/O and no clock reads: times come from the events (``due(now)`` takes its ``now``), and
everything it consults lives in memory.  Adapters carry decisions out (:mod:`.enforcer`) and
write opt-outs to disk (:mod:`.service`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from zoneinfo import ZoneInfo

from ctid.ami import events as ev
from ctid.compliance.abandon import AbandonRate, Breach
from ctid.compliance.carrier import CarrierWatch, describe, refusal, trunk_of
from ctid.compliance.channels import ChannelLookup, ChannelRef
from ctid.compliance.customers import CustomerLines
from ctid.compliance.decision import Action, Decision, Mode, Rule
from ctid.compliance.disclosure import DialledCall, DisclosureWatch
from ctid.compliance.frequency import FrequencyCaps
from ctid.compliance.hours import CallingHours
from ctid.compliance.numbers import normalise
from ctid.compliance.optout import OptOutList
from ctid.compliance.overlong import Overdue, OverlongWatch
from ctid.compliance.quota_gaming import QuotaGaming
from ctid.compliance.settings import ComplianceSettings
from ctid.privacy import mask_number
from ctid.tracker.model import Call, CallEnded, Direction, Effect, OutboundDial


class ComplianceGuard:
    def __init__(
        self, settings: ComplianceSettings, lookup: ChannelLookup, optouts: OptOutList | None = None
    ) -> None:
        self.settings = settings
        self._lookup = lookup
        region = settings.default_region
        self.optouts = optouts if optouts is not None else OptOutList(region)
        self._hours = CallingHours(settings.calling_hours, ZoneInfo(settings.site_timezone), region)
        self.caps = FrequencyCaps(settings.frequency.site, settings.frequency.seat)
        self._disclosure = DisclosureWatch(settings.disclosure.within_seconds)
        self.customers = CustomerLines(region, settings.customer_only.allow)
        over = settings.overlong
        hangup = over.hangup_minutes * 60 if over.hangup_minutes is not None else None
        self._overlong = OverlongWatch(over.warn_minutes * 60, hangup)
        q = settings.quota_gaming
        self._gaming = QuotaGaming(
            q.effective_seconds, q.margin_seconds,
            (q.burst_calls, q.burst_minutes * 60), (q.redial_answered, q.redial_hours * 3600),
        )  # fmt: skip
        c = settings.carrier_interception
        self._carrier = CarrierWatch(c.min_attempts, c.factor, c.floor, c.baseline_hours)
        self._refused_by = (frozenset(c.dial_statuses), frozenset(c.causes))
        self._stopped: set[tuple[str, str]] = set()
        """(pbx, linkedid) of dials stopped by enforcement, until they end: no carrier attempt."""
        rate = settings.abandon_rate
        reports = [hours * 3600 for hours in rate.report_windows_hours]
        self.abandon = AbandonRate(
            rate.ceiling, rate.window_hours * 3600, rate.min_calls, report_windows=reports
        )
        """Read by the ``ctid_abandon_rate_ratio`` gauge (``AbandonRate.report``)."""
        self._queues: dict[tuple[str, str], str] = {}
        """(pbx, linkedid) → queue the caller abandoned, until the call ends."""

    # --- inputs ---------------------------------------------------------------------------

    def on_effect(self, effect: Effect) -> list[Decision]:
        if isinstance(effect, OutboundDial):
            return self._on_dial(effect)
        if isinstance(effect, CallEnded):
            return self._judge_ended(effect.call) + self._on_call_ended(effect)
        return []

    def on_event(self, event: ev.AmiEvent, pbx: str) -> list[Decision]:
        """Feed every event *before* the tracker applies it (a Hangup still finds its channel)."""
        if isinstance(event, ev.UserEventRaised):
            self._on_user_event(event, pbx)
        elif isinstance(event, ev.DialEnded) and event.status == "ANSWER":
            ref = self._lookup(pbx, event.dest_uniqueid)
            if ref is not None:
                self._disclosure.answered(pbx, ref.linkedid, event.ts)
                if self.settings.overlong.mode is not Mode.OFF:
                    self._answered(event, pbx, ref)
        elif isinstance(event, ev.QueueAbandoned):
            ref = self._lookup(pbx, event.uniqueid)
            if ref is not None:
                self._queues[(pbx, ref.linkedid)] = event.queue
        return []

    def due(self, now: float) -> list[Decision]:
        """Timed rules: answered calls still without a disclosure at their deadline, and calls
        going on past an over-long threshold."""
        mode = self.settings.disclosure.mode
        within = self.settings.disclosure.within_seconds
        late = [
            self._decision(
                Rule.DISCLOSURE,
                mode,
                call,
                call.answered_at + within if call.answered_at is not None else now,
                f"no disclosure within {within:g} s of the answer",
            )
            for call in self._disclosure.due(now)
        ]
        return late + [self._overlong_decision(overdue) for overdue in self._overlong.due(now)]

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
            self.caps.record(e164, dial.seat, dial.ts)
        if self.settings.disclosure.mode is not Mode.OFF:
            self._disclosure.dialled(call)
        if self.settings.carrier_interception.mode is not Mode.OFF and any(
            d.acts for d in decisions
        ):
            self._stopped.add((dial.pbx, dial.linkedid))
        return decisions

    def _violations(self, dial: OutboundDial, e164: str) -> list[tuple[Rule, Mode, str]]:
        s, number, ts = self.settings, dial.number, dial.ts
        checks: list[tuple[Rule, Mode, Callable[[], str | None]]] = [
            (Rule.DO_NOT_CALL, s.do_not_call.mode, lambda: _DNC if e164 in self.optouts else None),
            (Rule.CALLING_HOURS, s.calling_hours.mode, lambda: self._hours.violation(number, ts)),
            (Rule.FREQUENCY, s.frequency.mode, lambda: self.caps.violation(e164, dial.seat, ts)),
            (
                Rule.CUSTOMER_ONLY,
                s.customer_only.mode,
                lambda: self.customers.violation(number, e164),
            ),
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
        breach = self.abandon.record(queue or settings.default_queue, ended, call.queue_abandoned)
        return [] if breach is None else [self._abandon_decision(call.pbx, ended, breach)]

    def _answered(self, event: ev.DialEnded, pbx: str, dest: ChannelRef) -> None:
        """Start (or move to a new seat) a customer call's over-long clock."""
        if dest.number is None:
            return  # no customer on the line: seat to seat
        seat_uid, seat = event.dest_uniqueid, dest.seat  # inbound: the seat answered
        if seat is None and event.caller_uniqueid:  # outbound: the customer answered the seat
            caller = self._lookup(pbx, event.caller_uniqueid)
            seat_uid, seat = event.caller_uniqueid, caller.seat if caller is not None else None
        if seat is not None:
            call = DialledCall(pbx, dest.linkedid, seat, dest.number, seat_uid)
            self._overlong.answered(call, event.ts)

    def _judge_ended(self, call: Call) -> list[Decision]:
        """Rules judged as a call ends: quota gaming and carrier refusals."""
        key = (call.pbx, call.linkedid)
        self._overlong.ended(*key)
        stopped = key in self._stopped
        self._stopped.discard(key)
        s, ended = self.settings, call.ended_at if call.ended_at is not None else call.started_at
        out: list[Decision] = []
        if s.quota_gaming.mode is not Mode.OFF:
            e164 = normalise(call.remote, s.default_region) if call.remote else ""
            out += [
                self._alarm(Rule.QUOTA_GAMING, call.pbx, ended, g.reason, g.seat, g.number, call)
                for g in self._gaming.judge(call, e164)
            ]
        carrier = s.carrier_interception
        # A dial ctid stopped itself was no attempt the carrier could refuse.
        if carrier.mode is not Mode.OFF and call.direction is Direction.OUTBOUND and not stopped:
            refused = refusal(call, *self._refused_by)
            spike = self._carrier.record(trunk_of(call.trunk_channel), ended, refused)
            if spike is not None:
                reason = describe(spike, carrier.baseline_hours)
                out.append(self._alarm(Rule.CARRIER_INTERCEPTION, call.pbx, ended, reason))
        return out

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
        self,
        rule: Rule,
        mode: Mode,
        call: DialledCall,
        ts: float,
        reason: str,
        action: Action | None = None,
    ) -> Decision:
        """``action`` None: the mode's, enforce meaning the configured hangup or redirect."""
        if action is None:
            action = _ACTIONS[mode]
            if action is Action.HANGUP:
                action = Action(self.settings.enforcement.action)
        uniqueid = call.caller_uniqueid
        ref = self._lookup(call.pbx, uniqueid) if uniqueid else None
        channel = ref.name if ref is not None else None
        if action in (Action.HANGUP, Action.REDIRECT) and channel is None:
            # The call is already gone (or never had a seat channel): nothing to stop.
            action, reason = Action.WARN, f"{reason}; no channel to act on"
        return Decision(
            rule, mode, action, call.pbx, ts, self.settings.version, call.seat,
            mask_number(call.number), reason, call.linkedid, uniqueid, channel,
        )  # fmt: skip

    def _overlong_decision(self, overdue: Overdue) -> Decision:
        mode = self.settings.overlong.mode
        limit = "hangup_minutes" if overdue.hangup else "warn_minutes"
        reason = f"call over {overdue.seconds / 60:g} min since the answer ({limit})"
        # Only the hang-up threshold in enforce mode stops the call (a Hangup, whatever the
        # enforcement action: the call has run its course); every other crossing warns.
        action = None if mode is not Mode.ENFORCE else Action.WARN
        if overdue.hangup and mode is Mode.ENFORCE:
            action = Action.HANGUP
        return self._decision(Rule.OVERLONG, mode, overdue.call, overdue.at, reason, action)

    def _alarm(
        self,
        rule: Rule,
        pbx: str,
        ts: float,
        reason: str,
        seat: str | None = None,
        number: str = "",
        call: Call | None = None,
    ) -> Decision:
        """A finding with no call to stop: ``enforce`` can only raise the alarm, like ``warn``."""
        mode: Mode = getattr(self.settings, rule.value).mode
        action = Action.NONE if mode is Mode.OBSERVE else Action.WARN
        linkedid = call.linkedid if call is not None else None
        return Decision(
            rule, mode, action, pbx, ts, self.settings.version, seat, mask_number(number), reason,
            linkedid,
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
