"""Compliance violations on the live feed: ``violations/<rule>``, one message per settled decision.

:class:`ViolationFeed` is an ``on_settled`` callback of the enforcer, like the store's
``ViolationRecorder``: it sees each decision once, at once for actions ``none``/``warn`` and with
the PBX's answer for ``hangup``/``redirect``.  A decision carries its number masked; the full
number is published only with ``show_numbers``, taken from the dial it belongs to
(:class:`DialledNumbers`).
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ctid.mqtt.feed import Offer, topic_level
from ctid.privacy import mask_number
from ctid.tracker.model import Effect, OutboundDial

if TYPE_CHECKING:  # types only: the compliance package knows nothing of MQTT, nor MQTT of it
    from ctid.compliance.decision import Decision
    from ctid.compliance.enforcer import ActionOutcome
    from ctid.pipeline import EffectSink

REMEMBERED_DIALS = 20_000
"""Dials whose full number is kept for ``show_numbers``: minutes of a busy floor's dialling."""


class DialledNumbers:
    """Effect sink: recent dials' full numbers, keyed as their decisions can find them.

    The key is (pbx, linkedid, masked number), so a call that dials two numbers maps each
    decision to its own.  Entries are not dropped when the call ends (an enforced decision
    settles when the PBX answers the ``Hangup``, often after the end was seen); the oldest go
    first once ``capacity`` is reached.
    """

    def __init__(self, capacity: int = REMEMBERED_DIALS) -> None:
        self._capacity = capacity
        self._numbers: OrderedDict[tuple[str, str, str], str] = OrderedDict()

    def __call__(self, effect: Effect) -> None:
        if isinstance(effect, OutboundDial) and effect.number:
            key = (effect.pbx, effect.linkedid, mask_number(effect.number))
            self._numbers[key] = effect.number
            self._numbers.move_to_end(key)
            if len(self._numbers) > self._capacity:
                self._numbers.popitem(last=False)

    def full(self, decision: Decision) -> str | None:
        """The full number behind the decision's masked one, if its dial is remembered."""
        if decision.linkedid is None:
            return None
        return self._numbers.get((decision.pbx, decision.linkedid, decision.number))


def violation_payload(
    decision: Decision, outcome: ActionOutcome | None, *, team: str | None, number: str | None
) -> dict[str, Any]:
    """The JSON body of ``violations/<rule>``; ``number`` as it may be shown (masked or not)."""
    return {
        "rule": str(decision.rule),
        "mode": str(decision.mode),
        "action": str(decision.action),
        "outcome": None if outcome is None else _outcome(outcome),
        "seat": decision.seat,
        "team": team,
        "pbx": decision.pbx,
        "linkedid": decision.linkedid,
        "channel": decision.channel,
        "number": number or None,
        "time": dt.datetime.fromtimestamp(decision.ts, dt.UTC).isoformat(),
        "policy_version": decision.policy_version,
        "reason": decision.reason,
    }


def _outcome(outcome: ActionOutcome) -> dict[str, Any]:
    return {"ami_action": outcome.action, "ok": outcome.ok, "detail": outcome.detail}


class ViolationFeed:
    """The enforcer's ``on_settled``: each settled decision becomes one ``violations/<rule>``."""

    def __init__(
        self, publisher: Offer, teams: Mapping[str, str], *, show_numbers: bool = False
    ) -> None:
        self._publisher = publisher
        self._teams = teams
        self._numbers = DialledNumbers() if show_numbers else None
        self.sinks: list[EffectSink] = [] if self._numbers is None else [self._numbers]
        """Effect sinks the PBX pipelines must feed (only with ``show_numbers``)."""

    def __call__(self, decision: Decision, outcome: ActionOutcome | None) -> None:
        number = decision.number  # masked by the guard
        if self._numbers is not None:
            number = self._numbers.full(decision) or number
        team = self._teams.get(decision.seat) if decision.seat else None
        body = violation_payload(decision, outcome, team=team, number=number)
        self._publisher.offer(f"violations/{topic_level(str(decision.rule))}", body)
