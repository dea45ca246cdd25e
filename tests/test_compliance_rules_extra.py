"""Customer-only lines, over-long calls, quota gaming and carrier refusals as pure objects, at
their boundaries; then their wiring in the guard, the service's loading and the metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ctid.compliance import (
    Action,
    ChannelRef,
    ComplianceGuard,
    ComplianceService,
    ComplianceSettings,
    Mode,
    Rule,
    load_compliance,
)
from ctid.compliance.carrier import CarrierWatch, describe, refusal, trunk_of
from ctid.compliance.customers import NOT_A_CUSTOMER, CustomerLines
from ctid.compliance.disclosure import DialledCall
from ctid.compliance.numbers import normalise
from ctid.compliance.overlong import OverlongWatch
from ctid.compliance.quota_gaming import QuotaGaming
from ctid.errors import PolicyError
from ctid.metrics.compliance import ComplianceMetrics
from ctid.privacy import mask_number
from ctid.tracker.model import (
    Call,
    CallEnded,
    Direction,
    OutboundDial,
    Outcome,
    Segment,
)
from tests.test_compliance_guard import drive
from tests.test_compliance_tcp import policy
from tests.truth import capture_streams

NUMBER = "7203000104"
E164 = "+17203000104"
STATUSES = frozenset({"CONGESTION", "CHANUNAVAIL"})
CAUSES = frozenset({1, 3, 21, 27, 34, 38, 41, 42})


# --- customer-only lines ---------------------------------------------------------------


def customer_check(lines: CustomerLines, dialled: str, region: str = "US") -> str | None:
    return lines.violation(dialled, normalise(dialled, region))


def test_a_listed_customer_passes_in_any_spelling_and_anyone_else_is_flagged() -> None:
    lines = CustomerLines("US")
    lines.add(NUMBER)
    assert customer_check(lines, "+1 (720) 300-0104") is None
    assert customer_check(lines, E164) is None
    assert customer_check(lines, "7203000105") == NOT_A_CUSTOMER


@pytest.mark.parametrize(
    ("dialled", "allowed"),
    [
        ("911", True),  # the short code itself
        ("18005551234", True),  # +1800 against the E.164 form
        ("8005551234", True),  # national spelling, same E.164
        ("+18005551234", True),
        ("+18015551234", False),  # one digit off the prefix
        ("+17995551234", False),
        ("912", False),
    ],
)
def test_allow_entries_are_digit_prefixes_of_the_dialled_or_e164_number(
    dialled: str, allowed: bool
) -> None:
    lines = CustomerLines("US", ["911", "+1800"])
    assert (customer_check(lines, dialled) is None) is allowed


def test_an_allowed_whole_number_matches_however_it_is_dialled() -> None:
    lines = CustomerLines("GB", ["02071234567"])
    assert customer_check(lines, "+44 20 7123 4567", "GB") is None
    assert customer_check(lines, "+442071234568", "GB") == NOT_A_CUSTOMER


def test_customer_csv_import_counts_new_numbers(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("name,number\nAnn,7203000104\nBob,+17203000104\n\nCid,7203000105\n")
    lines = CustomerLines("US")
    assert lines.import_csv(path) == 2  # Bob is Ann's number spelt another way
    assert NUMBER in lines
    assert "7203000105" in lines


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("number\n7203000104\n12ab\n", ":3: column 1 (number): '12ab' is not a phone number"),
        ("phone\n7203000104\n", ":1: no 'number' column"),
        ('number\n7203000104\n"' + "9" * 200_000 + '"\n', ":3: malformed CSV"),
    ],
)
def test_a_bad_customer_csv_is_one_error_naming_file_and_line(
    tmp_path: Path, body: str, where: str
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(body)
    with pytest.raises(PolicyError) as caught:
        CustomerLines("US").import_csv(path)
    assert str(caught.value).startswith(f"{path}{where}")


def test_the_service_loads_the_customer_lists_at_start(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("number\n7203000104\n")
    settings = policy(customer_only={"mode": "enforce", "customer_csv": [str(path)]})
    service = ComplianceService(settings, lambda pbx, uid: None, {}, lambda: 0.0)
    assert NUMBER not in service.guard.customers
    service.load()
    assert NUMBER in service.guard.customers


# --- over-long calls -------------------------------------------------------------------


def answered_call(seat: str = "1001", uid: str = "S1") -> DialledCall:
    return DialledCall("pbx", "L1", seat, NUMBER, uid)


def test_overlong_warns_then_hangs_up_exactly_at_the_thresholds_once_each() -> None:
    watch = OverlongWatch(60.0, 120.0)
    watch.answered(answered_call(), 100.0)
    assert watch.due(159.999) == []
    (warn,) = watch.due(160.0)
    assert (warn.hangup, warn.at, warn.seconds) == (False, 160.0, 60.0)
    assert watch.due(219.999) == []
    (hangup,) = watch.due(220.0)
    assert (hangup.hangup, hangup.at, hangup.seconds) == (True, 220.0, 120.0)
    assert watch.due(10_000.0) == []


def test_a_call_ending_before_a_threshold_crosses_none() -> None:
    watch = OverlongWatch(60.0, 120.0)
    watch.answered(answered_call(), 100.0)
    assert len(watch.due(160.0)) == 1
    watch.ended("pbx", "L1")
    assert watch.due(220.0) == []
    assert len(watch) == 0


def test_a_transfer_moves_the_call_to_the_new_seat_without_restarting_the_clock() -> None:
    watch = OverlongWatch(60.0, None)
    watch.answered(answered_call(), 100.0)
    watch.answered(answered_call("1002", "S2"), 150.0)
    (warn,) = watch.due(160.0)
    assert (warn.call.seat, warn.call.caller_uniqueid, warn.at) == ("1002", "S2", 160.0)
    watch.answered(answered_call("1003", "S3"), 170.0)  # after the last threshold
    assert watch.due(10_000.0) == []


# --- quota gaming ----------------------------------------------------------------------


def ended_call(
    talk: dict[str, float],
    ended: float,
    number: str = NUMBER,
    placed_by: str | None = "1001",
    outcome: Outcome = Outcome.ANSWERED,
    direction: Direction = Direction.OUTBOUND,
) -> Call:
    call = Call("pbx", f"L-{ended}", direction, ended - 100, remote=number, placed_by=placed_by)
    call.ended_at, call.outcome = ended, outcome
    for n, (seat, seconds) in enumerate(talk.items()):
        call.segments[(f"S{n}", "T")] = Segment(seat, f"PJSIP/{seat}-1", "PJSIP/carrier-2", seconds)
    return call


def gaming(
    burst: tuple[int, float] = (3, 600.0), redial: tuple[int, float] = (3, 86_400.0)
) -> QuotaGaming:
    return QuotaGaming(30.0, 5.0, burst, redial)


@pytest.mark.parametrize(
    ("talk", "just_over"), [(29.999, False), (30.0, True), (34.999, True), (35.0, False)]
)
def test_just_over_the_threshold_is_effective_up_to_the_margin(
    talk: float, just_over: bool
) -> None:
    assert gaming().just_over(talk) is just_over


def burst_of(rule: QuotaGaming, times: list[float], seat: str = "1001") -> list[str]:
    """Seats reported as each call of ``times`` (31 s of talk each, a number per time) ends."""
    found: list[str] = []
    for ts in times:
        call = ended_call({seat: 31.0}, ts, number=f"720300{int(ts):04d}")
        found += [g.seat for g in rule.judge(call, normalise(call.remote, "US"))]
    return found


def test_a_burst_is_the_nth_just_over_call_inside_the_window() -> None:
    assert burst_of(gaming(), [0.0, 300.0, 599.999]) == ["1001"]
    # The window is half-open: a call exactly 600 s old no longer counts.
    assert burst_of(gaming(), [0.0, 300.0, 600.0]) == []


def test_a_burst_is_reported_once_per_episode() -> None:
    rule = gaming()
    assert burst_of(rule, [0.0, 100.0, 200.0]) == ["1001"]
    assert burst_of(rule, [300.0, 400.0]) == []  # still three or more in the window
    assert burst_of(rule, [2000.0]) == []  # alone in the window: the episode is over
    assert burst_of(rule, [2001.0, 2002.0]) == ["1001"]  # a new one


def test_calls_well_over_the_threshold_and_other_seats_do_not_join_a_burst() -> None:
    rule = gaming()
    assert burst_of(rule, [0.0, 1.0]) == []
    long_call = ended_call({"1001": 35.0}, 2.0, number="7203000199")
    assert rule.judge(long_call, normalise(long_call.remote, "US")) == []
    assert burst_of(rule, [3.0], seat="1002") == []
    assert burst_of(rule, [4.0]) == ["1001"]


def test_talk_of_one_seat_in_several_segments_is_summed() -> None:
    rule = gaming(burst=(2, 600.0))
    call = ended_call({"1001": 15.0}, 10.0)
    call.segments[("S9", "T")] = Segment("1001", "PJSIP/1001-9", "PJSIP/carrier-9", 16.0)
    assert burst_of(rule, [0.0]) == []
    assert [g.seat for g in rule.judge(call, E164)] == ["1001"]


def redials(rule: QuotaGaming, calls: list[Call]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for call in calls:
        out += [(g.seat, g.number) for g in rule.judge(call, normalise(call.remote, "US"))]
    return out


def test_the_third_answered_call_to_one_number_by_one_seat_is_a_redial() -> None:
    talk = {"1001": 90.0}
    calls = [ended_call(talk, 0.0), ended_call(talk, 1000.0, number=E164)]
    third = ended_call(talk, 86_399.999, number="720-300-0104")
    assert redials(gaming(), [*calls, third]) == [("1001", E164)]
    late = ended_call(talk, 86_400.0)  # the first call is 24 h old: out of the window
    assert redials(gaming(), [*calls, late]) == []


def test_unanswered_calls_and_calls_the_dialler_did_not_talk_in_are_no_redials() -> None:
    rule = gaming(redial=(2, 86_400.0))
    busy = ended_call({}, 0.0, outcome=Outcome.BUSY)
    transferred = ended_call({"1002": 90.0}, 1.0)  # placed by 1001, talked by 1002 only
    inbound = ended_call({"1001": 90.0}, 2.0, placed_by=None, direction=Direction.INBOUND)
    assert redials(rule, [busy, transferred, inbound]) == []
    assert redials(rule, [ended_call({"1001": 90.0}, 3.0)]) == []
    assert redials(rule, [ended_call({"1001": 90.0}, 4.0)]) == [("1001", E164)]


# --- carrier interception --------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "trunk"),
    [
        ("PJSIP/carrier-0000001a", "PJSIP/carrier"),
        ("SIP/carrier-b-00000001", "SIP/carrier-b"),
        ("IAX2/upstream", "IAX2/upstream"),
    ],
)
def test_the_trunk_is_the_channel_name_without_its_sequence(channel: str, trunk: str) -> None:
    assert trunk_of(channel) == trunk


@pytest.mark.parametrize(
    ("status", "cause", "outcome", "refused"),
    [
        ("CONGESTION", 34, Outcome.CONGESTION, "cause 34"),
        ("CHANUNAVAIL", 20, Outcome.FAILED, "CHANUNAVAIL"),  # 20 is not in the set
        ("NOANSWER", 1, Outcome.FAILED, "cause 1"),
        ("BUSY", 17, Outcome.BUSY, None),
        ("CANCEL", 16, Outcome.NO_ANSWER, None),
        ("ANSWER", 41, Outcome.ANSWERED, None),  # dropped mid-call: no refusal
    ],
)
def test_only_carrier_refusals_count(
    status: str, cause: int, outcome: Outcome, refused: str | None
) -> None:
    call = ended_call({}, 0.0, outcome=outcome)
    call.dial_status, call.cause = status, cause
    assert refusal(call, STATUSES, CAUSES) == refused


def attempts(
    watch: CarrierWatch, hour: int, total: int, refused: int, trunk: str = "T"
) -> list[int]:
    """Record ``total`` attempts in ``hour`` (the first ``refused`` refused); the 1-based
    attempts at which a spike was reported."""
    spikes: list[int] = []
    for n in range(total):
        ts = hour * 3600.0 + n
        if watch.record(trunk, ts, "cause 34" if n < refused else None) is not None:
            spikes.append(n + 1)
    return spikes


@pytest.mark.parametrize(("min_attempts", "spike"), [(9, [9]), (10, [10]), (11, [])])
def test_an_hour_is_judged_from_min_attempts_on(min_attempts: int, spike: list[int]) -> None:
    # 10 attempts, the first refused, no history: 1/9 and 1/10 are over the 9 % floor.
    watch = CarrierWatch(min_attempts, factor=3.0, floor=0.09, baseline_hours=24)
    assert attempts(watch, 100, 10, 1) == spike


@pytest.mark.parametrize(("refused", "spike"), [(8, []), (9, [100]), (10, [100])])
def test_the_floor_is_inclusive(refused: int, spike: list[int]) -> None:
    watch = CarrierWatch(min_attempts=100, factor=1.0, floor=0.09, baseline_hours=24)
    assert attempts(watch, 100, 100, refused) == spike  # 9/100 is exactly the floor


@pytest.mark.parametrize(("refused", "spike"), [(1, []), (2, [8])])
def test_the_share_must_reach_factor_times_the_baseline(refused: int, spike: list[int]) -> None:
    watch = CarrierWatch(min_attempts=8, factor=2.0, floor=0.0625, baseline_hours=24)
    attempts(watch, 99, 16, 2)  # the baseline hour: 2/16 = 12.5 %
    # 2/8 = 25 % is exactly 2 x 12.5 %; 1/8 = 12.5 % is not.
    assert attempts(watch, 100, 8, refused) == spike


@pytest.mark.parametrize(("back", "spike"), [(2, []), (3, [4])])
def test_the_baseline_is_the_previous_hours_only(back: int, spike: list[int]) -> None:
    watch = CarrierWatch(min_attempts=4, factor=2.0, floor=0.09, baseline_hours=2)
    assert attempts(watch, 100 - back, 4, 4) == [4]  # a bad hour, reported on its own
    # 2 hours back it is the baseline (100 %: nothing can be 2x that); 3 hours back, forgotten.
    assert attempts(watch, 100, 4, 1) == spike


def test_one_spike_per_trunk_and_hour() -> None:
    watch = CarrierWatch(min_attempts=2, factor=1.0, floor=0.5, baseline_hours=1)
    assert attempts(watch, 100, 6, 6) == [2]
    assert attempts(watch, 100, 2, 2, trunk="U") == [2]
    assert attempts(watch, 101, 2, 2) == [2]  # next hour: 100 % >= 1 x 100 %


def test_the_spike_says_trunk_counts_causes_and_baseline() -> None:
    watch = CarrierWatch(min_attempts=4, factor=1.0, floor=0.5, baseline_hours=24)
    for n, why in enumerate(["cause 34", None, "CHANUNAVAIL", "cause 34"]):
        spike = watch.record("PJSIP/carrier", 360_000.0 + n, why)
    assert spike is not None
    assert describe(spike, 24) == (
        "trunk PJSIP/carrier: 3/4 outbound attempts refused this hour "
        "(75.0%: cause 34 x2, CHANUNAVAIL x1) vs 0.0% in the previous 24 h"
    )


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[customer_only]\nmode = "warn"\n',
         "customer_only: Value error, customer_csv is empty: with mode 'warn'"),
        ('[customer_only]\nallow = ["9-1-1"]\n',
         "customer_only.allow: Value error, allow entry '9-1-1' must be digits"),
        ("[overlong]\nwarn_minutes = 30\nhangup_minutes = 30\n",
         "overlong: Value error, hangup_minutes (30) must be greater than warn_minutes (30)"),
        ("[quota_gaming]\nburst_calls = 1\n",
         "quota_gaming.burst_calls: Input should be greater than or equal to 2"),
        ('[carrier_interception]\ndial_statuses = ["CONGESTED"]\n',
         "carrier_interception.dial_statuses: Value error, 'CONGESTED' is not an Asterisk"),
        ("[carrier_interception]\ncauses = [34, 128]\n",
         "carrier_interception.causes: Value error, cause 128 is not a Q.850 cause (0-127)"),
        ("[carrier_interception]\nfactor = 0.5\n",
         "carrier_interception.factor: Input should be greater than or equal to 1"),
    ],
)  # fmt: skip
def test_a_bad_new_rule_setting_is_one_error_naming_file_and_key(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f'version = "1"\n{body}')
    with pytest.raises(PolicyError) as caught:
        load_compliance(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_the_new_rules_are_off_unless_the_policy_says_otherwise() -> None:
    settings = ComplianceSettings(version="1")
    assert settings.customer_only.mode is Mode.OFF
    assert (settings.overlong.mode, settings.overlong.warn_minutes) == (Mode.OFF, 30.0)
    assert settings.overlong.hangup_minutes is None
    assert settings.quota_gaming.mode is Mode.OFF
    assert settings.carrier_interception.causes == [1, 3, 21, 27, 34, 38, 41, 42]


# --- in the guard ----------------------------------------------------------------------


def seat_lookup(pbx: str, uniqueid: str) -> ChannelRef:
    return ChannelRef(f"PJSIP/seat-{uniqueid}", f"L-{uniqueid}")


def dial(ts: float, number: str = NUMBER, uid: str = "U1") -> OutboundDial:
    return OutboundDial("pbx", ts, "1001", number, uid, f"L-{uid}")


def customer_policy(mode: str, **more: Any) -> ComplianceSettings:
    """The guard never reads the files: its tests fill the list in memory."""
    return policy(customer_only={"mode": mode, "customer_csv": ["unused.csv"]}, **more)


def test_a_private_call_is_stopped_at_the_dial_with_the_number_masked() -> None:
    guard = ComplianceGuard(customer_policy("enforce"), seat_lookup)
    guard.customers.add("7203000105")
    (stop,) = guard.on_effect(dial(0.0))
    assert (stop.rule, stop.action, stop.channel) == (
        Rule.CUSTOMER_ONLY,
        Action.HANGUP,
        "PJSIP/seat-U1",
    )
    assert stop.number == mask_number(NUMBER)
    assert NUMBER not in stop.reason
    assert guard.on_effect(dial(1.0, number="7203000105", uid="U2")) == []


def test_a_dial_stopped_by_ctid_is_no_carrier_attempt() -> None:
    settings = customer_policy("enforce", carrier_interception={"mode": "warn", "min_attempts": 1})
    guard = ComplianceGuard(settings, seat_lookup)
    guard.on_effect(dial(0.0))
    call = ended_call({}, 5.0, outcome=Outcome.CONGESTION)
    call.linkedid, call.trunk_channel, call.dial_status, call.cause = (
        "L-U1", "PJSIP/carrier-00000001", "CONGESTION", 21,
    )  # fmt: skip
    assert guard.on_effect(CallEnded(call)) == []
    call.linkedid = "L-other"  # the same failure on a dial ctid let through
    (spike,) = guard.on_effect(CallEnded(call))
    assert (spike.rule, spike.action, spike.seat, spike.number) == (
        Rule.CARRIER_INTERCEPTION,
        Action.WARN,
        None,
        "",
    )


def test_the_same_capture_answered_twice_by_one_seat_is_a_redial() -> None:
    # answered_customer_hangup: seat 1001 talks 12 s with 7104012101; replayed twice.
    data = capture_streams("answered_customer_hangup")[0]
    events = data[data.index(b"\r\n\r\nEvent:") + 4 :]  # without the banner and login
    settings = policy(quota_gaming={"mode": "enforce", "redial_answered": 2})
    _, decisions = drive(data + events, settings)
    (redial,) = decisions
    assert (redial.rule, redial.action, redial.seat, redial.channel) == (
        Rule.QUOTA_GAMING,
        Action.WARN,
        "1001",
        None,
    )
    assert redial.number == mask_number("+17104012101")
    assert redial.reason == "2 answered calls to one number within 24 h"


def test_the_metrics_count_the_new_rules_by_name() -> None:
    registry = CollectorRegistry()
    metrics = ComplianceMetrics(registry, "site", {"1001": "red"})
    service = ComplianceService(
        customer_policy("enforce"), seat_lookup, {}, lambda: 0.0, metrics=metrics
    )
    service.effect_sink(dial(1.0))
    labels = {"site": "site", "team": "red", "rule": "customer_only"}
    assert (
        registry.get_sample_value("ctid_compliance_violations_total", labels | {"mode": "enforce"})
        == 1
    )
    assert registry.get_sample_value("ctid_compliance_interceptions_total", labels) == 1


def test_a_rule_that_is_off_reads_no_customer_files(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    settings = policy(customer_only={"mode": "off", "customer_csv": [str(missing)]})
    service = ComplianceService(settings, lambda pbx, uid: None, {}, lambda: 0.0)
    service.load()
    assert len(service.guard.customers) == 0
    on = policy(customer_only={"mode": "observe", "customer_csv": [str(missing)]})
    with pytest.raises(PolicyError, match=r"nowhere\.csv: cannot read"):
        ComplianceService(on, lambda pbx, uid: None, {}, lambda: 0.0).load()
