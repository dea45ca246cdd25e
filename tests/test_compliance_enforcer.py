"""The enforcer: AMI actions for enforced decisions, outcomes recorded, numbers masked in logs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from ctid.ami.codec import Message
from ctid.compliance import (
    Action,
    ChannelRef,
    ComplianceService,
    ComplianceSettings,
    Decision,
    Enforcer,
    Mode,
    Rule,
)
from ctid.compliance.settings import EnforcementSettings
from ctid.errors import AmiError
from ctid.metrics.compliance import ComplianceMetrics
from ctid.privacy import mask_number
from ctid.tracker.model import OutboundDial

NUMBER = "7203000104"


def decision(action: Action = Action.HANGUP, pbx: str = "pbx") -> Decision:
    mode = {Action.NONE: Mode.OBSERVE, Action.WARN: Mode.WARN}.get(action, Mode.ENFORCE)
    return Decision(
        Rule.DO_NOT_CALL, mode, action, pbx, 1.0, "v1", "1005", mask_number(NUMBER),
        "number is on the do-not-call list", "L1", "U1", "PJSIP/1005-00000006",
    )  # fmt: skip


class FakeSender:
    def __init__(self, reply: Message | None = None) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.reply = reply

    def send_now(
        self, name: str, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> Coroutine[Any, Any, Message]:
        self.sent.append((name, dict(headers or {})))
        return self._answer()

    async def _answer(self) -> Message:
        if self.reply is None:
            raise AmiError("no answer to Hangup within 5 s")
        return self.reply


async def run(enforcer: Enforcer, decisions: list[Decision]) -> None:
    task = asyncio.create_task(enforcer.run())
    enforcer.submit(decisions)
    for _ in range(100):
        await asyncio.sleep(0.005)
        if enforcer.idle and len(enforcer.decisions) == len(decisions):
            break
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.asyncio
async def test_hangup_and_redirect_carry_the_configured_headers() -> None:
    sender = FakeSender(Message("Response", "Success", {"Message": "Channel Hungup"}))
    settings = EnforcementSettings(redirect_context="dnc-announce", redirect_priority=2)
    enforcer = Enforcer(settings, {"pbx": sender})
    await run(enforcer, [decision(), decision(Action.REDIRECT), decision(Action.WARN)])
    assert sorted(sender.sent) == [
        ("Hangup", {"Channel": "PJSIP/1005-00000006", "Cause": "21"}),
        (
            "Redirect",
            {"Channel": "PJSIP/1005-00000006", "Context": "dnc-announce", "Exten": "s",
             "Priority": "2"},
        ),
    ]  # fmt: skip
    assert [o.ok for o in enforcer.outcomes] == [True, True]
    assert enforcer.counts[(Rule.DO_NOT_CALL, Action.WARN)] == 1


@pytest.mark.asyncio
async def test_failed_actions_are_recorded_not_raised() -> None:
    refused = FakeSender(Message("Response", "Error", {"Message": "No such channel"}))
    enforcer = Enforcer(EnforcementSettings(), {"pbx": refused, "slow": FakeSender(reply=None)})
    await run(enforcer, [decision(), decision(pbx="slow"), decision(pbx="unknown")])
    outcomes = {o.decision.pbx: (o.ok, o.detail) for o in enforcer.outcomes}
    assert outcomes == {
        "pbx": (False, "No such channel"),
        "slow": (False, "no answer to Hangup within 5 s"),
        "unknown": (False, "no AMI connection for pbx 'unknown'"),
    }


@pytest.mark.asyncio
async def test_logs_show_masked_numbers_only() -> None:
    sender = FakeSender(Message("Response", "Success", {}))
    with capture_logs() as logs:
        await run(
            Enforcer(EnforcementSettings(), {"pbx": sender}), [decision(), decision(Action.NONE)]
        )
    assert {entry["event"] for entry in logs} == {"compliance_enforced", "compliance_violation"}
    assert all(NUMBER not in repr(entry) for entry in logs)
    assert all(entry["number"] == "720*****04" for entry in logs)


@pytest.mark.asyncio
async def test_the_action_is_written_before_submit_returns() -> None:
    # The event callback that decided must not wait for the loop's next turns: the rest of
    # a 64 KiB read would be processed first.
    sender = FakeSender(Message("Response", "Success", {}))
    enforcer = Enforcer(EnforcementSettings(), {"pbx": sender})
    enforcer.submit([decision()])
    assert sender.sent == [("Hangup", {"Channel": "PJSIP/1005-00000006", "Cause": "21"})]
    await run(enforcer, [])
    assert [o.ok for o in enforcer.outcomes] == [True]


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    enforcer = Enforcer(EnforcementSettings(), {}, queue_size=2)
    enforcer.submit([decision()] * 5)
    assert enforcer.dropped == 3


def test_the_service_counts_checks_and_violations_on_the_metrics_port() -> None:
    registry = CollectorRegistry()
    metrics = ComplianceMetrics(registry, "site", {"1005": "red"})
    settings = ComplianceSettings.model_validate(
        {"version": "v1", "do_not_call": {"mode": "enforce"}, "calling_hours": {"mode": "off"}}
    )
    service = ComplianceService(
        settings, lambda pbx, uid: ChannelRef("PJSIP/1005-1", "L"), {}, lambda: 0.0,
        metrics=metrics,
    )  # fmt: skip
    service.guard.optouts.add(NUMBER, 0.0)
    service.effect_sink(OutboundDial("pbx", 1.0, "1005", NUMBER, "U1", "L"))
    service.effect_sink(OutboundDial("pbx", 2.0, "1005", "2125551234", "U2", "L2"))
    team = {"site": "site", "team": "red"}
    assert registry.get_sample_value("ctid_compliance_checks_total", team) == 2
    violation = {**team, "rule": "do_not_call", "mode": "enforce"}
    assert registry.get_sample_value("ctid_compliance_violations_total", violation) == 1
    assert (
        registry.get_sample_value(
            "ctid_compliance_interceptions_total", {**team, "rule": "do_not_call"}
        )
        == 1
    )
