"""The enforcer hands every decision on once settled: with its action's outcome, or none."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Mapping
from typing import Any

import pytest

from ctid.ami.codec import Message
from ctid.compliance import Action, ActionOutcome, Decision, Enforcer
from ctid.compliance.enforcer import CANCELLED
from ctid.compliance.enforcer import Settled as OnSettled
from ctid.compliance.settings import EnforcementSettings
from tests.test_compliance_enforcer import FakeSender, decision

Settled = list[tuple[Decision, ActionOutcome | None]]


class SilentPbx:
    """Takes the action and never answers (the daemon stops before it would)."""

    def __init__(self) -> None:
        self.received = asyncio.Event()

    def send_now(
        self, name: str, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> Coroutine[Any, Any, Message]:
        self.received.set()
        return self._never_answer()

    async def _never_answer(self) -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.mark.asyncio
async def test_recorded_decisions_settle_at_once_and_enforced_ones_with_the_outcome() -> None:
    settled: Settled = []
    sender = FakeSender(Message("Response", "Success", {"Message": "Channel Hungup"}))
    enforcer = Enforcer(EnforcementSettings(), {"pbx": sender}, on_settled=_append(settled))
    task = asyncio.create_task(enforcer.run())
    enforcer.submit([decision(Action.NONE), decision(Action.WARN), decision(Action.HANGUP)])
    try:
        async with asyncio.timeout(5):
            while len(settled) < 3:  # noqa: ASYNC110 - no event for "three settled"
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    by_action = {d.action: outcome for d, outcome in settled}
    assert (by_action[Action.NONE], by_action[Action.WARN]) == (None, None)
    enforced = by_action[Action.HANGUP]
    assert enforced is not None
    assert (enforced.action, enforced.ok, enforced.detail) == ("Hangup", True, "Channel Hungup")


@pytest.mark.asyncio
async def test_an_action_cut_short_by_shutdown_still_settles_as_cancelled() -> None:
    settled: Settled = []
    pbx = SilentPbx()
    enforcer = Enforcer(EnforcementSettings(), {"pbx": pbx}, on_settled=_append(settled))
    task = asyncio.create_task(enforcer.run())
    enforcer.submit([decision(Action.HANGUP)])
    await asyncio.wait_for(pbx.received.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    ((_decision, outcome),) = settled
    assert outcome is not None
    assert (outcome.ok, outcome.detail) == (False, CANCELLED)


@pytest.mark.asyncio
async def test_decisions_still_queued_at_shutdown_are_kept_and_their_actions_cancelled() -> None:
    settled: Settled = []
    pbx = SilentPbx()
    enforcer = Enforcer(EnforcementSettings(), {"pbx": pbx}, on_settled=_append(settled))
    task = asyncio.create_task(enforcer.run())
    await asyncio.sleep(0)  # run() is waiting on its queue
    enforcer.submit([decision(Action.WARN), decision(Action.HANGUP)])
    task.cancel()  # before run() takes them off the queue
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert [(d.action, o.detail if o else None) for d, o in settled] == [
        (Action.WARN, None),
        (Action.HANGUP, CANCELLED),
    ]
    assert len(enforcer.decisions) == 2


def _append(settled: Settled) -> OnSettled:
    return lambda d, outcome: settled.append((d, outcome))
