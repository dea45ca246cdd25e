"""Carries decisions out: logs every one, sends ``Hangup``/``Redirect`` for enforced ones.

:meth:`Enforcer.submit` is called from the event path: it writes an enforced decision's AMI
action to the socket at once (a write never blocks) and queues the rest; :meth:`Enforcer.run`
logs, and owns the tasks that wait for the PBX's answers, so a slow AMI answer never holds up
the next event.
Each decision, once settled (recorded, or its action answered), goes to ``on_settled`` — the
daemon stores it as a violation.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import structlog

from ctid.ami.codec import Message
from ctid.compliance.decision import Action, Decision
from ctid.compliance.settings import EnforcementSettings
from ctid.errors import AmiError

_log = structlog.get_logger(__name__)
_HISTORY = 1000
CANCELLED = "cancelled: ctid stopped before the PBX answered"


class ActionSender(Protocol):
    """What :class:`ctid.ami.client.AmiClient` and :class:`ctid.ami.link.AmiSession` offer."""

    def send_now(
        self, name: str, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> Coroutine[Any, Any, Message]:
        """Write the action before returning; the awaitable gives the PBX's answer."""
        ...


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    decision: Decision
    action: str
    ok: bool
    detail: str
    sent_at: float
    """Wall clock just before the action was written."""
    answered_at: float


Settled = Callable[[Decision, ActionOutcome | None], None]
"""A decision with the outcome of its action (``None``: it sends no action)."""


@dataclass(frozen=True, slots=True)
class _Sent:
    """An enforced decision whose action is written (or could not be)."""

    decision: Decision
    action: str
    sent_at: float
    answer: Coroutine[Any, Any, Message] | None
    failure: str | None
    settles: bool = True
    """False for a warning shown on the phone: the decision itself is settled as recorded."""


class Enforcer:
    def __init__(
        self,
        settings: EnforcementSettings,
        senders: Mapping[str, ActionSender],
        *,
        queue_size: int = 1024,
        clock: Callable[[], float] = time.time,
        on_settled: Settled | None = None,
    ) -> None:
        self._settings, self._senders, self._clock = settings, senders, clock
        self._on_settled = on_settled
        self._queue: asyncio.Queue[Decision | _Sent] = asyncio.Queue(queue_size)
        self.decisions: deque[Decision] = deque(maxlen=_HISTORY)
        self.outcomes: deque[ActionOutcome] = deque(maxlen=_HISTORY)
        self.counts: Counter[tuple[str, str]] = Counter()
        """(rule, action) → decisions seen; a bounded label set for metrics."""
        self.dropped = 0

    @property
    def idle(self) -> bool:
        """Nothing queued and every action sent has its outcome (tests wait on this)."""
        acting = sum(d.acts for d in self.decisions)
        return self._queue.empty() and len(self.outcomes) >= acting

    def submit(self, decisions: Iterable[Decision]) -> None:
        """Send enforced actions now, queue the rest; a full queue drops (and counts) the surplus.

        Dropped decisions send nothing: an action whose answer nobody would wait for is worse
        than a missed one that the drop counter reports.
        """
        for decision in decisions:
            if self._queue.full():
                if not self.dropped:
                    _log.error("compliance_queue_full", size=self._queue.maxsize)
                self.dropped += 1
                continue
            if decision.acts:
                self._queue.put_nowait(self._send(decision, *self.action_for(decision)))
            elif (shown := self.display_for(decision)) is not None:
                self._queue.put_nowait(self._send(decision, *shown, settles=False))
            else:
                self._queue.put_nowait(decision)

    def _send(
        self, decision: Decision, name: str, headers: dict[str, str], *, settles: bool = True
    ) -> _Sent:
        sender = self._senders.get(decision.pbx)
        sent_at = self._clock()
        if sender is None:
            missing = f"no AMI connection for pbx {decision.pbx!r}"
            return _Sent(decision, name, sent_at, None, missing, settles)
        try:
            return _Sent(decision, name, sent_at, sender.send_now(name, headers), None, settles)
        except AmiError as err:
            return _Sent(decision, name, sent_at, None, str(err), settles)

    def display_for(self, decision: Decision) -> tuple[str, dict[str, str]] | None:
        """The AMI action that shows a warning on the seat's phone, if configured."""
        s = self._settings
        if decision.action is not Action.WARN or decision.channel is None:
            return None
        text = f"ctid: {decision.rule} - {decision.reason}"  # a reason never holds the number
        if s.warn_display == "sendtext":
            return "SendText", {"Channel": decision.channel, "Message": text}
        if s.warn_display == "userevent":
            return "UserEvent", {
                "UserEvent": s.warn_event,
                "Channel": decision.channel,
                "Seat": decision.seat or "",
                "Rule": str(decision.rule),
                "Reason": decision.reason,
                "PolicyVersion": decision.policy_version,
            }
        return None

    async def run(self) -> NoReturn:
        try:
            async with asyncio.TaskGroup() as tg:
                while True:
                    item = await self._queue.get()
                    if isinstance(item, _Sent):
                        tg.create_task(self._await_answer(item))
                    self._record(item)
        finally:
            self._record_leftovers()

    def _record(self, item: Decision | _Sent) -> None:
        decision = item.decision if isinstance(item, _Sent) else item
        self.decisions.append(decision)
        self.counts[(decision.rule, decision.action)] += 1
        if decision.action is Action.NONE:
            _log.info("compliance_violation", **_fields(decision))
        elif decision.action is Action.WARN:
            _log.warning("compliance_warning", **_fields(decision))
        if not decision.acts and self._on_settled is not None:
            self._on_settled(decision, None)

    def _record_leftovers(self) -> None:
        """At shutdown, decisions still queued are kept; their actions' answers are not awaited."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            self._record(item)
            if isinstance(item, _Sent):
                if item.answer is not None:
                    item.answer.close()
                if not item.settles:
                    continue
                at = item.sent_at
                self._settle(ActionOutcome(item.decision, item.action, False, CANCELLED, at, at))

    def action_for(self, decision: Decision) -> tuple[str, dict[str, str]]:
        """The AMI action (name, headers) that carries out an enforced decision."""
        assert decision.channel is not None  # the guard only sets an acting action with one
        s = self._settings
        if decision.action is Action.REDIRECT:
            return "Redirect", {
                "Channel": decision.channel,
                "Context": s.redirect_context,
                "Exten": s.redirect_exten,
                "Priority": str(s.redirect_priority),
            }
        return "Hangup", {"Channel": decision.channel, "Cause": str(s.hangup_cause)}

    async def _await_answer(self, sent: _Sent) -> None:
        if not sent.settles:
            await self._await_display(sent)
            return
        decision, name = sent.decision, sent.action
        if sent.answer is None:
            ok, detail = False, sent.failure or "not sent"
        else:
            try:
                reply = await sent.answer
                ok = reply.name.lower() == "success"
                detail = reply.get("Message") or reply.name
            except AmiError as err:
                ok, detail = False, str(err)
            except asyncio.CancelledError:
                # Shutting down mid-action: the violation is still kept, its outcome unknown.
                at = sent.sent_at
                self._settle(ActionOutcome(decision, name, False, CANCELLED, at, at))
                raise
        outcome = ActionOutcome(decision, name, ok, detail, sent.sent_at, self._clock())
        self._settle(outcome)
        log = _log.warning if ok else _log.error
        log("compliance_enforced", ami_action=name, ok=ok, detail=detail, **_fields(decision))

    async def _await_display(self, sent: _Sent) -> None:
        detail = sent.failure
        if sent.answer is not None:
            try:
                reply = await sent.answer
                detail = None if reply.name.lower() == "success" else reply.get("Message", "?")
            except AmiError as err:
                detail = str(err)
        if detail is not None:
            # The violation is recorded either way; only the courtesy to the seat failed.
            _log.warning("compliance_display_failed", ami_action=sent.action, detail=detail)

    def _settle(self, outcome: ActionOutcome) -> None:
        self.outcomes.append(outcome)
        if self._on_settled is not None:
            self._on_settled(outcome.decision, outcome)


def _fields(decision: Decision) -> dict[str, object]:
    # decision.number is masked already; channel names carry no customer data.
    return {
        "rule": str(decision.rule),
        "mode": str(decision.mode),
        "action": str(decision.action),
        "pbx": decision.pbx,
        "seat": decision.seat,
        "number": decision.number,
        "reason": decision.reason,
        "channel": decision.channel,
        "linkedid": decision.linkedid,
        "policy_version": decision.policy_version,
    }
