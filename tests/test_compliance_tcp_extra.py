"""Customer-only lines, over-long calls, quota gaming and carrier refusals on captures replayed
over real TCP: the client sends the action, the replay server records it.

Single-call captures go through ``tests.test_compliance_tcp.replay`` with the service the
daemon runs — lists loaded at start — whose timer ticks at every event's PBX time: a replay
streams a whole call in milliseconds, far inside one 0.25 s tick of the real timer.
``mixed_busy_period`` (95 calls) goes through ``tests.test_tcp_accuracy.replay_over_tcp``,
which reads a capture to its end (``replay`` stops once the first call has ended).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import tests.test_compliance_tcp as compliance_tcp
import tests.test_tcp_accuracy as tcp_accuracy
from ctid.ami.capture import parse_capture
from ctid.ami.events import AmiEvent
from ctid.compliance import (
    Action,
    ComplianceService,
    ComplianceSettings,
    Decision,
    Mode,
    Rule,
    tracker_lookup,
)
from ctid.compliance.carrier import trunk_of
from ctid.metrics.compliance import ComplianceMetrics
from ctid.pipeline import EffectSink, PbxPipeline
from ctid.privacy import mask_number
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker
from tests.test_compliance_guard import HOLD_ANSWERED
from tests.test_compliance_tcp import (
    BUSY_NUMBER,
    assert_seat_hung_up,
    call_actions,
    policy,
    replay,
)
from tests.test_tcp_accuracy import replay_over_tcp
from tests.truth import capture_streams, load_truth


class DaemonLikeService(ComplianceService):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.load()

    def event_sink(self, pbx: str) -> Callable[[AmiEvent], None]:
        sink = super().event_sink(pbx)

        def ticking(event: AmiEvent) -> None:
            self._submit(self.guard.due(event.ts))
            sink(event)

        return ticking


@pytest.fixture(autouse=True)
def daemon_like_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """``replay`` builds its own service: have it build this one."""
    monkeypatch.setattr(compliance_tcp, "ComplianceService", DaemonLikeService)


# --- customer-only lines ---------------------------------------------------------------


def customers(tmp_path: Path, *numbers: str) -> str:
    path = tmp_path / "customers.csv"
    path.write_text("number\n" + "".join(f"{n}\n" for n in numbers))
    return str(path)


@pytest.mark.asyncio
async def test_a_number_on_no_customer_list_is_hung_up_before_answer(tmp_path: Path) -> None:
    csv = customers(tmp_path, "7203000105")  # a customer, but not the one busy.ami dials
    settings = policy(customer_only={"mode": "enforce", "customer_csv": [csv]})
    server, service = await replay(capture_streams("busy")[0], settings)
    assert_seat_hung_up(server)
    (decision,) = service.enforcer.decisions
    assert (decision.rule, decision.action, decision.seat) == (
        Rule.CUSTOMER_ONLY,
        Action.HANGUP,
        "1005",
    )
    assert decision.number == mask_number(BUSY_NUMBER)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("listed", "allow"),
    [([BUSY_NUMBER], []), (["+1 720 300 0104"], []), (["7203000105"], ["720"])],
)
async def test_a_listed_or_allowed_number_goes_through(
    tmp_path: Path, listed: list[str], allow: list[str]
) -> None:
    csv = customers(tmp_path, *listed)
    settings = policy(customer_only={"mode": "enforce", "customer_csv": [csv], "allow": allow})
    server, service = await replay(capture_streams("busy")[0], settings)
    assert call_actions(server) == []
    assert list(service.enforcer.decisions) == []


# --- over-long calls -------------------------------------------------------------------

HOLD_SEAT_CHANNEL = "PJSIP/1001-0000000c"


@pytest.mark.asyncio
async def test_an_overlong_call_is_warned_then_hung_up_at_the_seat_channel() -> None:
    # hold_mid_call: answered at HOLD_ANSWERED, 28 s to the hang-up; limits at 6 s and 15 s.
    settings = policy(overlong={"mode": "enforce", "warn_minutes": 0.1, "hangup_minutes": 0.25})
    server, service = await replay(capture_streams("hold_mid_call")[0], settings)
    (hangup,) = call_actions(server)
    assert (hangup.name, hangup.get("Channel")) == ("Hangup", HOLD_SEAT_CHANNEL)
    warn, stop = service.enforcer.decisions
    assert (warn.rule, warn.action, stop.rule, stop.action) == (
        Rule.OVERLONG,
        Action.WARN,
        Rule.OVERLONG,
        Action.HANGUP,
    )
    assert warn.ts == pytest.approx(HOLD_ANSWERED + 6)
    assert stop.ts == pytest.approx(HOLD_ANSWERED + 15)
    assert (stop.seat, stop.channel, stop.number) == ("1001", HOLD_SEAT_CHANNEL, "710*****07")
    assert stop.reason == "call over 0.25 min since the answer (hangup_minutes)"


@pytest.mark.asyncio
async def test_in_warn_mode_the_hangup_limit_only_warns() -> None:
    settings = policy(overlong={"mode": "warn", "warn_minutes": 0.1, "hangup_minutes": 0.25})
    server, service = await replay(capture_streams("hold_mid_call")[0], settings)
    assert call_actions(server) == []
    assert [d.action for d in service.enforcer.decisions] == [Action.WARN, Action.WARN]


@pytest.mark.asyncio
async def test_a_call_ending_between_the_limits_gets_the_warning_only() -> None:
    # answered_customer_hangup: 12 s of talk; warned at 6 s, ended before 15 s.
    settings = policy(overlong={"mode": "enforce", "warn_minutes": 0.1, "hangup_minutes": 0.25})
    server, service = await replay(capture_streams("answered_customer_hangup")[0], settings)
    assert call_actions(server) == []
    (warn,) = service.enforcer.decisions
    assert (warn.action, warn.channel) == (Action.WARN, "PJSIP/1001-00000000")


@pytest.mark.asyncio
async def test_an_overlong_inbound_call_hangs_up_the_seat_that_answered() -> None:
    # inbound_queue_answered: seat 1002 answers 13800138000 and talks 15 s.
    settings = policy(overlong={"mode": "enforce", "warn_minutes": 0.1, "hangup_minutes": 0.2})
    server, service = await replay(capture_streams("inbound_queue_answered")[0], settings)
    (hangup,) = call_actions(server)
    assert hangup.get("Channel") == "PJSIP/1002-0000001e"
    assert [(d.seat, d.number, d.action) for d in service.enforcer.decisions] == [
        ("1002", mask_number("13800138000"), Action.WARN),
        ("1002", mask_number("13800138000"), Action.HANGUP),
    ]


# --- carrier interception on single-call captures --------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(("name", "cause"), [("congestion", 34), ("unallocated_number", 1)])
async def test_a_refused_attempt_is_a_spike_when_one_attempt_is_enough(
    name: str, cause: int
) -> None:
    settings = policy(carrier_interception={"mode": "enforce", "min_attempts": 1})
    server, service = await replay(capture_streams(name)[0], settings)
    assert call_actions(server) == []
    (spike,) = service.enforcer.decisions
    assert (spike.rule, spike.action, spike.channel, spike.number) == (
        Rule.CARRIER_INTERCEPTION,
        Action.WARN,
        None,
        "",
    )
    assert spike.reason == (
        f"trunk PJSIP/carrier: 1/1 outbound attempts refused this hour "
        f"(100.0%: cause {cause} x1) vs 0.0% in the previous 24 h"
    )


@pytest.mark.asyncio
async def test_a_busy_callee_is_no_carrier_refusal() -> None:
    settings = policy(carrier_interception={"mode": "warn", "min_attempts": 1})
    _, service = await replay(capture_streams("busy")[0], settings)
    assert list(service.enforcer.decisions) == []


# --- a whole busy period ---------------------------------------------------------------

REFUSED = {"congestion", "unallocated"}
"""Intended outcomes in the truth files that a carrier refuses (busy, no answer: the callee)."""


async def replay_to_the_end(
    name: str, settings: ComplianceSettings, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Decision], CollectorRegistry]:
    """Every call of a capture through a compliance service; its decisions and metrics."""
    registry = CollectorRegistry()
    services: list[ComplianceService] = []

    def pipeline_with_guard(
        tracker: CallTracker, tallies: DailyTallies, sinks: Iterable[EffectSink] = ()
    ) -> PbxPipeline:
        pipeline = PbxPipeline(tracker, tallies, sinks)
        metrics = ComplianceMetrics(registry, "site", {})
        lookup = tracker_lookup({"pbx": tracker})
        service = ComplianceService(settings, lookup, {}, lambda: tracker.last_ts, metrics=metrics)
        pipeline.sinks.append(service.effect_sink)
        pipeline.event_sinks.append(service.event_sink("pbx"))
        services.append(service)
        return pipeline

    monkeypatch.setattr(tcp_accuracy, "PbxPipeline", pipeline_with_guard)
    await replay_over_tcp([parse_capture(data, name=name) for data in capture_streams(name)])
    (service,) = services
    task = asyncio.create_task(service.enforcer.run())
    await asyncio.sleep(0.01)
    task.cancel()  # what is still queued is recorded as the enforcer stops
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return list(service.enforcer.decisions), registry


def talks(truth: dict[str, Any]) -> Iterator[tuple[str, float, float]]:
    """(seat, talk seconds, end of its last segment) per seat and answered call."""
    for call in truth["expected"]["per_call"]:
        talk: dict[str, float] = defaultdict(float)
        end: dict[str, float] = {}
        for segment in call["segments"]:
            talk[segment["seat"]] += segment["talk_seconds"]
            end[segment["seat"]] = max(end.get(segment["seat"], 0.0), segment["end"])
        for seat, seconds in talk.items():
            yield seat, seconds, end[seat]


def bursting_seats(
    truth: dict[str, Any], low: float, high: float, calls: int, window: float
) -> set[str]:
    """Seats with ``calls`` talks in ``[low, high)`` s ending less than ``window`` s apart."""
    ends: dict[str, list[float]] = defaultdict(list)
    for seat, seconds, end in talks(truth):
        if low <= seconds < high:
            ends[seat].append(end)
    found: set[str] = set()
    for seat, times in ends.items():
        times.sort()
        if any(times[i + calls - 1] - times[i] < window for i in range(len(times) - calls + 1)):
            found.add(seat)
    return found


@pytest.mark.asyncio
async def test_quota_gaming_flags_the_seats_whose_just_over_calls_bunch_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    truth = load_truth("mixed_busy_period")
    # No talk lands in 30-35 s in this capture; 36-45 s does, for four seats.
    expected = bursting_seats(truth, 36.0, 45.0, 2, 120.0)
    assert expected == {"1005", "1006"}  # 1003 has two as well, minutes apart
    outbound = [c["number"] for c in truth["expected"]["per_call"] if c["direction"] == "outbound"]
    assert len(set(outbound)) == len(outbound)  # no number is called twice: no redial
    settings = policy(
        quota_gaming={
            "mode": "enforce", "effective_seconds": 36, "margin_seconds": 9,
            "burst_calls": 2, "burst_minutes": 2, "redial_answered": 2,
        }
    )  # fmt: skip
    decisions, registry = await replay_to_the_end("mixed_busy_period", settings, monkeypatch)
    # One episode per seat: two qualifying calls each, and no third.
    assert sorted(d.seat or "" for d in decisions) == sorted(expected)
    assert {(d.rule, d.mode, d.action, d.channel) for d in decisions} == {
        (Rule.QUOTA_GAMING, Mode.ENFORCE, Action.WARN, None)
    }
    assert all(d.reason.startswith("2 answered calls with talk just over") for d in decisions)
    labels = {"site": "site", "team": "default", "rule": "quota_gaming", "mode": "enforce"}
    assert registry.get_sample_value("ctid_compliance_violations_total", labels) == 2


def refused_position(truth: dict[str, Any]) -> int:
    """1-based place, among its hour's outbound attempts by end time, of the only refusal."""
    attempts = sorted(
        (c["t_end"], c["intended"].get("outcome") in REFUSED)
        for c in truth["calls"]
        if c["direction"] == "outbound"
    )
    refused = [(end, n) for n, (end, was) in enumerate(attempts) if was]
    ((end, _),) = refused  # one refusal in the whole capture
    hour = int(end // 3600)
    same_hour = [e for e, _ in attempts if int(e // 3600) == hour]
    assert int(attempts[0][0] // 3600) == hour  # its hour is the first: no baseline
    return sum(1 for e in same_hour if e <= end)


@pytest.mark.asyncio
@pytest.mark.parametrize(("min_attempts", "floor"), [(5, 0.09), (21, 0.04), (25, 0.04), (26, 0.04)])
async def test_carrier_spike_in_a_busy_hour_with_one_congested_attempt(
    monkeypatch: pytest.MonkeyPatch, min_attempts: int, floor: float
) -> None:
    # With one refusal at place k and no history, the share is 1/k at k, then falls: the
    # hour is reported, at max(k, min_attempts), only if 1/max(k, min_attempts) >= floor.
    k = refused_position(load_truth("mixed_busy_period"))
    judged = max(k, min_attempts)
    settings = policy(
        carrier_interception={"mode": "warn", "min_attempts": min_attempts, "floor": floor}
    )
    decisions, _ = await replay_to_the_end("mixed_busy_period", settings, monkeypatch)
    if 1 / judged < floor:
        assert decisions == []
        return
    (spike,) = decisions
    trunk = trunk_of(truth_trunk_channel())
    assert spike.rule is Rule.CARRIER_INTERCEPTION
    assert spike.reason.startswith(
        f"trunk {trunk}: 1/{judged} outbound attempts refused this hour ({1 / judged:.1%}"
    )


def truth_trunk_channel() -> str:
    """The trunk channel of an answered outbound call of the capture (they share one trunk)."""
    for call in load_truth("mixed_busy_period")["expected"]["per_call"]:
        if call["direction"] == "outbound" and call["segments"]:
            channel: str = call["segments"][0]["ext_channel"]
            return channel
    raise AssertionError("no answered outbound call")
