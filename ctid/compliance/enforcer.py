"""Carries decisions out: logs every one, sends ``Hangup``/``Redirect`` for enforced ones.

:meth:`Enforcer.submit` is called from the event path and only queues; :meth:`Enforcer.run`
owns the tasks that talk to the PBX, so a slow AMI answer never holds up the next event.
Each decision, once settled (recorded, or its action answered), goes to ``on_settled`` — the
daemon stores it as a violation.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NoReturn, Protocol

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

    async def send_action(
        self,
        name: str,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Message: ...


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
        self._queue: asyncio.Queue[Decision] = asyncio.Queue(queue_size)
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
        """Queue decisions without waiting; a full queue drops (and counts) the surplus."""
        for decision in decisions:
            try:
                self._queue.put_nowait(decision)
            except asyncio.QueueFull:
                if not self.dropped:
                    _log.error("compliance_queue_full", size=self._queue.maxsize)
                self.dropped += 1

    async def run(self) -> NoReturn:
        async with asyncio.TaskGroup() as tg:
            while True:
                decision = await self._queue.get()
                if decision.acts:
                    tg.create_task(self._act(decision))
                self._record(decision)

    def _record(self, decision: Decision) -> None:
        self.decisions.append(decision)
        self.counts[(decision.rule, decision.action)] += 1
        if decision.action is Action.NONE:
            _log.info("compliance_violation", **_fields(decision))
        elif decision.action is Action.WARN:
            _log.warning("compliance_warning", **_fields(decision))
        if not decision.acts and self._on_settled is not None:
            self._on_settled(decision, None)

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

    async def _act(self, decision: Decision) -> None:
        name, headers = self.action_for(decision)
        sender = self._senders.get(decision.pbx)
        sent_at = self._clock()
        if sender is None:
            ok, detail = False, f"no AMI connection for pbx {decision.pbx!r}"
        else:
            try:
                reply = await sender.send_action(name, headers)
                ok = reply.name.lower() == "success"
                detail = reply.get("Message") or reply.name
            except AmiError as err:
                ok, detail = False, str(err)
            except asyncio.CancelledError:
                # Shutting down mid-action: the violation is still kept, its outcome unknown.
                self._settle(ActionOutcome(decision, name, False, CANCELLED, sent_at, sent_at))
                raise
        outcome = ActionOutcome(decision, name, ok, detail, sent_at, self._clock())
        self._settle(outcome)
        log = _log.warning if ok else _log.error
        log("compliance_enforced", ami_action=name, ok=ok, detail=detail, **_fields(decision))

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
