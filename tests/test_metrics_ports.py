"""Metric families fed by sinks and ports: outcomes per seat, teams, workday, health, ports."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest

from ctid.ami.codec import parse_frame
from ctid.live.floor import LiveFloor
from ctid.metrics.calls import CallMetrics
from ctid.metrics.compliance import ComplianceMetrics
from ctid.metrics.exposition import Exposition
from ctid.metrics.floor import SeatLabels
from ctid.metrics.health import GapMeter, PolicyInfo, QueueDepths, ReconcileMetrics
from ctid.metrics.quota import Workday, WorkdayCollector
from ctid.metrics.seat_outcomes import SeatOutcomes
from ctid.pipeline import PbxPipeline
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import CallEnded
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker
from tests.exposition_helpers import parse_openmetrics, parse_text
from tests.truth import CAPTURES, capture_files

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _ended_calls(name: str) -> list[object]:
    from ctid.ami.capture import load_capture

    tracker = CallTracker("pbx", EndpointDirectory())
    effects: list[object] = []
    pipeline = PbxPipeline(tracker, DailyTallies(SHANGHAI), [effects.append])
    for path in capture_files(name):
        for frame in load_capture(path).events:
            pipeline.on_messages([parse_frame(frame.raw)], frame.timestamp or 0.0)
    return effects


def test_outbound_outcomes_per_seat_sum_to_the_tallied_outbound_calls() -> None:
    tallies = DailyTallies(SHANGHAI)
    outcomes = SeatOutcomes(tallies.local_day)
    for effect in _ended_calls("mixed_busy_period"):
        tallies.apply(effect)  # type: ignore[arg-type]
        outcomes(effect)  # type: ignore[arg-type]
    (day,) = tallies.days
    per_seat = outcomes.day(day)
    assert per_seat, "the mixed capture has outbound calls"
    for seat, tally in tallies.days[day].items():
        assert sum(count for _, count in per_seat.get(seat, ())) == tally.outbound
    assert {outcome for counts in per_seat.values() for outcome, _ in counts} >= {"answered"}


def test_calls_are_counted_by_the_team_of_their_seat() -> None:
    registry = CollectorRegistry()
    sink = CallMetrics(registry, "hq", {"1001": "red"})
    for effect in _ended_calls("answered_customer_hangup") + _ended_calls(
        "inbound_queue_abandoned"
    ):
        sink(effect)  # type: ignore[arg-type]
    value = registry.get_sample_value
    labels = {"site": "hq", "direction": "outbound", "outcome": "answered", "team": "red"}
    assert value("ctid_calls_total", labels) == 1
    abandoned = {"site": "hq", "direction": "inbound", "outcome": "abandoned", "team": ""}
    assert value("ctid_calls_total", abandoned) == 1
    assert value("ctid_call_talk_duration_seconds_count", {"site": "hq", "team": "red"}) == 1


def test_call_counters_of_every_configured_team_exist_at_zero_before_any_call() -> None:
    # increase() over a series born with its first call would miss that call.
    registry = CollectorRegistry()
    CallMetrics(registry, "hq", {"1001": "red", "1002": "blue"})
    value = registry.get_sample_value
    for team in ("red", "blue", "default"):
        for direction in ("outbound", "inbound"):
            labels = {"site": "hq", "team": team, "direction": direction, "outcome": "failed"}
            assert value("ctid_calls_total", labels) == 0
        assert value("ctid_talk_seconds_total", {"site": "hq", "team": team}) == 0
    abandoned = {"site": "hq", "team": "", "direction": "inbound", "outcome": "abandoned"}
    assert value("ctid_calls_total", abandoned) == 0
    assert value("ctid_calls_total", {**abandoned, "team": "green"}) is None


def _at(hour: int, minute: int = 0) -> float:
    return dt.datetime(2026, 11, 23, hour, minute, tzinfo=SHANGHAI).timestamp()


@pytest.mark.parametrize(
    ("now", "progress", "remaining"),
    [
        (_at(8), 0.0, 10 * 3600),
        (_at(9), 0.0, 9 * 3600),
        (_at(13, 30), 0.5, 4.5 * 3600),
        (_at(18), 1.0, 0.0),
        (_at(23), 1.0, 0.0),
    ],
)
def test_workday_progress_runs_from_start_to_end_in_the_site_time_zone(
    now: float, progress: float, remaining: float
) -> None:
    assert Workday(SHANGHAI).progress(now) == pytest.approx((progress, remaining))


def test_a_night_shift_ends_the_next_morning() -> None:
    night = Workday(SHANGHAI, dt.time(22), dt.time(6))
    assert night.progress(_at(2)) == pytest.approx((0.5, 4 * 3600))
    assert night.progress(_at(23)) == pytest.approx((0.125, 7 * 3600))


def test_workday_collector_exports_progress_and_time_left() -> None:
    registry = CollectorRegistry()
    registry.register(WorkdayCollector("hq", Workday(SHANGHAI), lambda: _at(13, 30)))
    assert registry.get_sample_value("ctid_workday_progress_ratio", {"site": "hq"}) == 0.5
    assert registry.get_sample_value("ctid_workday_remaining_seconds", {"site": "hq"}) == 16200


def test_compliance_port_counts_violations_and_interceptions_per_team() -> None:
    registry = CollectorRegistry()
    port = ComplianceMetrics(registry, "hq", {"1001": "red"})
    port.checked("1001")
    port.checked("1001")
    port.violated("1001", "calling_hours", "enforce")
    port.violated("1001", "frequency", "monitor")
    value = registry.get_sample_value
    assert value("ctid_compliance_checks_total", {"site": "hq", "team": "red"}) == 2
    violation = {"site": "hq", "team": "red", "rule": "frequency", "mode": "monitor"}
    assert value("ctid_compliance_violations_total", violation) == 1
    stopped = {"site": "hq", "team": "red", "rule": "calling_hours"}
    assert value("ctid_compliance_interceptions_total", stopped) == 1
    assert value("ctid_compliance_interceptions_total", {**stopped, "rule": "frequency"}) == 0


def test_an_enforced_rule_that_stops_nothing_is_no_interception() -> None:
    registry = CollectorRegistry()
    port = ComplianceMetrics(registry, "hq", {"1001": "red"})
    port.violated(None, "abandon_rate", "enforce", intercepted=False)
    value = registry.get_sample_value
    alarm = {"site": "hq", "team": "", "rule": "abandon_rate"}
    assert value("ctid_compliance_violations_total", {**alarm, "mode": "enforce"}) == 1
    assert value("ctid_compliance_interceptions_total", alarm) is None


def test_compliance_series_of_every_configured_team_exist_at_zero() -> None:
    registry = CollectorRegistry()
    ComplianceMetrics(registry, "hq", {"1001": "red"})
    value = registry.get_sample_value
    for team in ("red", "default"):
        assert value("ctid_compliance_checks_total", {"site": "hq", "team": team}) == 0
        dnc = {"site": "hq", "team": team, "rule": "do_not_call"}
        assert value("ctid_compliance_interceptions_total", dnc) == 0
        for mode in ("enforce", "monitor"):
            assert value("ctid_compliance_violations_total", {**dnc, "mode": mode}) == 0


def test_pending_ports_emit_no_samples_until_an_engine_reports() -> None:
    registry = CollectorRegistry()
    reconcile = ReconcileMetrics(registry)
    registry.register(PolicyInfo())
    names = {s.name for family in registry.collect() for s in family.samples}
    assert names == set()
    reconcile.observe_drift("pbx1", -1.5)
    reconcile.set_completeness("pbx1", 0.99)
    value = registry.get_sample_value
    assert value("ctid_cdr_talk_drift_seconds_bucket", {"pbx": "pbx1", "le": "2.0"}) == 1
    assert value("ctid_data_completeness_ratio", {"pbx": "pbx1"}) == 0.99


def test_gap_meter_adds_closed_and_open_gaps() -> None:
    now = [100.0]
    meter = GapMeter(lambda: now[0])
    meter.down(100.0)
    meter.down(105.0)  # still the same gap
    meter.up(110.0)
    meter.up(111.0)  # already up: nothing
    meter.down(120.0)
    now[0] = 125.0
    assert meter.total == 15.0


def test_queue_depths_are_read_at_scrape_time() -> None:
    registry = CollectorRegistry()
    depths = QueueDepths()
    registry.register(depths)
    backlog = [1, 2, 3]
    depths.register("store", lambda: len(backlog), 100)
    backlog.append(4)
    assert registry.get_sample_value("ctid_queue_depth", {"queue": "store"}) == 4
    assert registry.get_sample_value("ctid_queue_capacity", {"queue": "store"}) == 100


class _Link:
    def __init__(self, pipeline: PbxPipeline) -> None:
        self.pipeline = pipeline

    def pbx_now(self, local_now: float) -> float:
        return local_now


def test_live_floor_wires_presence_states_and_outcomes_into_the_fast_metrics() -> None:
    from ctid.ami.capture import load_capture

    registry = CollectorRegistry()
    tallies = DailyTallies(SHANGHAI)
    links: list[_Link] = []
    clock = [0.0]
    live = LiveFloor(
        site="hq",
        seats={"1003": SeatLabels("red")},
        tallies=tallies,
        registry=registry,
        links=lambda: links,
        directory=EndpointDirectory(),
        clock=lambda: clock[0],
    )
    pipeline = PbxPipeline(CallTracker("pbx", EndpointDirectory()), tallies, live.sinks)
    links.append(_Link(pipeline))
    for frame in load_capture(CAPTURES / "agent_pause_unpause.ami.gz").events:
        message = parse_frame(frame.raw)
        pipeline.on_messages([message], frame.timestamp or 0.0)
        live.on_batch(links[0], [message], frame.timestamp or 0.0)
        if message.name == "QueueMemberPause" and message.headers.get("Paused") == "1":
            clock[0] = frame.timestamp or 0.0
            break
    samples = parse_text(live.exposition.render("")[0])
    state = {
        dict(labels)["state"]
        for (name, labels), _ in samples.items()
        if name == "ctid_seat_state" and dict(labels)["seat"] == "1003"
    }
    assert state == {"paused"}
    assert ("ctid_workday_progress_ratio", (("site", "hq"),)) in samples


@pytest.mark.parametrize("openmetrics", [False, True])
def test_call_families_render_fast_exactly_as_prometheus_client_would(openmetrics: bool) -> None:
    teams = {"1005": "red", "1006": "blue", "1007": "red"}
    stock_registry = CollectorRegistry()
    stock = CallMetrics(stock_registry, "hq", teams)
    fast = CallMetrics(None, "hq", teams)
    effects = _ended_calls("mixed_busy_period") + _ended_calls("inbound_queue_abandoned")
    for effect in effects:
        stock(effect)  # type: ignore[arg-type]
        fast(effect)  # type: ignore[arg-type]
    accept = "application/openmetrics-text; version=1.0.0" if openmetrics else "text/plain"
    body, _ = Exposition(CollectorRegistry(), [fast]).render(accept)
    if openmetrics:
        stock_body = om_generate_latest(stock_registry)  # type: ignore[no-untyped-call]
        got, want = parse_openmetrics(body), parse_openmetrics(stock_body)
    else:
        got, want = parse_text(body), parse_text(generate_latest(stock_registry))
    assert got == want
    # Not vacuous: calls of every kind, talk and a histogram with its buckets were rendered.
    names = {name for name, _labels in got}
    assert {"ctid_calls_total", "ctid_talk_seconds_total"} <= names
    assert "ctid_call_talk_duration_seconds_bucket" in names
    ended = sum(isinstance(effect, CallEnded) for effect in effects)
    assert sum(v for (name, _), v in got.items() if name == "ctid_calls_total") == ended == 96
