"""The quota engine driven through simulated days with a fake clock (no real time passes)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ctid.policy import (
    Adjustments,
    Policy,
    QuotaEngine,
    QuotaEvent,
    QuotaScheduler,
    build_report,
    load_policy,
    report_today,
)
from ctid.policy.engine import KEEP_DAYS
from ctid.policy.loader import resolve_seats
from ctid.policy.tiers import SeatProfile
from ctid.policy.workday import dialing_progress, end_of_day, next_checkpoint
from ctid.tracker.model import Call, CallEnded, Direction, Segment

POLICY = load_policy(Path(__file__).parent.parent / "examples" / "policy.toml")
SEATS = resolve_seats(POLICY)
SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2026, 11, 23)
SUNDAY = dt.date(2026, 11, 29)
_ids = itertools.count()


def at(day: dt.date, hour: int, minute: int = 0, tz: ZoneInfo = SHANGHAI) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=tz)


def call(seat: str, start: dt.datetime, talk: float, *, fax: bool = False) -> CallEnded:
    n = next(_ids)
    t0 = start.timestamp()
    segments = {}
    if talk > 0:
        channel = f"PJSIP/{seat}-{n:08x}"
        segment = Segment(seat, channel, f"PJSIP/carrier-{n:08x}", talk, 0.0, [(t0, t0 + talk)])
        segments[(seat, channel)] = segment
    return CallEnded(
        Call("pbx", f"L{n}", Direction.OUTBOUND, t0, placed_by=seat, answered_at=t0,
             ended_at=t0 + talk, fax=fax, segments=segments)
    )  # fmt: skip


def work(
    engine: QuotaEngine,
    seat: str,
    start: dt.datetime,
    *,
    calls: int = 0,
    talk_each: float = 60.0,
    faxes: int = 0,
    follow_ups: int = 0,
) -> list[QuotaEvent]:
    """``calls`` answered calls back to back with a 30 s gap, then faxes and follow-ups."""
    events: list[QuotaEvent] = []
    moment = start
    for _ in range(calls):
        events += engine.apply(call(seat, moment, talk_each))
        moment += dt.timedelta(seconds=talk_each + 30)
    for _ in range(faxes):
        events += engine.apply(call(seat, moment, 0.0, fax=True))
    if follow_ups:
        events += engine.add_follow_ups(seat, moment, follow_ups)
    return events


def engine_for(*seats: str, start: dt.datetime, policy: Policy = POLICY) -> QuotaEngine:
    profiles = resolve_seats(policy)
    return QuotaEngine(policy, {s: profiles[s] for s in seats}, Adjustments(), start=start)


def kinds(events: list[QuotaEvent]) -> list[tuple[str, str | None]]:
    return [(e.kind, e.seat) for e in events]


# --- one working day -----------------------------------------------------------------------


@pytest.fixture
def monday() -> QuotaEngine:
    """1001 standard, 1002 first half-month, 1003 new staff out 3 h on a visit, robot 9001."""
    engine = engine_for("1001", "1002", "1003", "9001", start=at(MONDAY, 8))
    engine.adjustments.field_visit(
        "1003", MONDAY, 3, by="李经理", at=at(MONDAY, 8), reason="customer site"
    )
    work(engine, "1001", at(MONDAY, 9, 20), calls=60, faxes=4, follow_ups=10)
    work(engine, "1002", at(MONDAY, 9, 20), calls=40, talk_each=90, faxes=5, follow_ups=6)
    work(engine, "1003", at(MONDAY, 9, 20), calls=10)
    work(engine, "9001", at(MONDAY, 9, 20), calls=1000, talk_each=0)
    return engine


def afternoon(engine: QuotaEngine) -> list[QuotaEvent]:
    start = at(MONDAY, 13, 30)
    events = work(engine, "1001", start, calls=60, faxes=4, follow_ups=15)
    events += work(engine, "1002", start, calls=30, talk_each=90, faxes=7, follow_ups=9)
    events += work(engine, "1003", start, calls=70, faxes=12, follow_ups=25)
    return events + work(engine, "9001", start, calls=1000, talk_each=0)


def test_tiers_and_adjustments_set_the_day_targets(monday: QuotaEngine) -> None:
    assert monday.evaluate("1002", at(MONDAY, 10)).tier == "first_half_month"
    assert monday.targets("1003", MONDAY) == {
        "talk_minutes": 120.0,  # a field visit reduces calls, not talk time (policy)
        "faxes": 12.0,
        "effective_calls": 80.0,  # 120 × (9 h − 3 h) / 9 h
        "follow_ups": 25.0,
    }
    assert monday.targets("9001", MONDAY) == {"dials": 2000.0}


def test_pace_check_flags_only_seats_behind_the_pro_rata_line(monday: QuotaEngine) -> None:
    events = monday.advance(at(MONDAY, 11, 45))
    assert kinds(events) == [("behind_pace", "1003")]
    share = 145 / 385  # 9:20–11:45 of 385 dialing minutes
    assert events[0].shortfall["effective_calls"] == pytest.approx(80 * share - 10)
    evaluation = monday.evaluate("1003", at(MONDAY, 11, 45))
    assert evaluation.status == "at_risk"
    assert evaluation.quotas["effective_calls"].forecast == pytest.approx(10 / share)
    assert monday.evaluate("1001", at(MONDAY, 11, 45)).status == "on_track"


def test_quota_met_fires_once_when_a_target_is_crossed(monday: QuotaEngine) -> None:
    events = afternoon(monday)
    met = {(e.seat, e.quota) for e in events if e.kind == "quota_met"}
    assert met == {
        ("1001", "talk_minutes"),
        ("1001", "effective_calls"),
        ("1001", "faxes"),
        ("1001", "follow_ups"),
        ("1002", "faxes"),
        ("1002", "follow_ups"),
        ("1003", "effective_calls"),
        ("1003", "faxes"),
        ("1003", "follow_ups"),
        ("9001", "dials"),
    }
    assert len(events) == len(met)
    assert work(monday, "1001", at(MONDAY, 17), calls=3) == []


def test_eod_report_at_17_50_has_the_day_numbers(monday: QuotaEngine, tmp_path: Path) -> None:
    afternoon(monday)
    assert kinds(monday.advance(at(MONDAY, 17, 50)))[-1] == ("report_due", None)
    report = build_report(monday, at(MONDAY, 17, 50))
    rows = {row.seat: row.as_record() for row in report.rows}
    assert rows["1001"] | {"attainment_talk_minutes": 1.2} == rows["1001"]
    assert (rows["1001"]["talk_minutes"], rows["1001"]["status"], rows["1001"]["fine"]) == (
        120.0,
        "met",
        0,
    )
    assert rows["1002"]["effective_calls"] == 70
    assert rows["1002"]["talk_minutes"] == 105.0
    assert rows["1002"]["attainment_effective_calls"] == 0.875
    assert (rows["1002"]["status"], rows["1002"]["fine"]) == ("behind", 50.0)  # 10 calls × 5
    assert (rows["1003"]["attainment_talk_minutes"], rows["1003"]["status"]) == (0.6667, "at_risk")
    assert [row.seat for row in report.robots] == ["9001"]
    teams = {t.team: t for t in report.teams}
    assert teams["team-a"].targets["effective_calls"] == 200.0  # 120 + 80
    assert teams["team-a"].actuals["effective_calls"] == 190.0
    assert teams["team-b"].targets["effective_calls"] == 500.0  # the team's own target
    assert "robots" not in teams
    csv_path, json_path = report_today(monday, _Fixed(at(MONDAY, 17, 50)), tmp_path)
    assert csv_path.name == "quota-2026-11-23.csv"
    assert len(csv_path.read_text(encoding="utf-8").splitlines()) == 5  # header + 4 seats
    assert json.loads(json_path.read_text(encoding="utf-8"))["seats"][1]["fine"] == 50.0


def test_shortfall_at_eod_then_grace_then_makeup_required(monday: QuotaEngine) -> None:
    afternoon(monday)
    monday.advance(at(MONDAY, 17, 55))
    eod = monday.advance(at(MONDAY, 18))
    assert {e.seat: dict(e.shortfall) for e in eod} == {
        "1002": {"talk_minutes": 15.0, "effective_calls": 10.0},
        "1003": {"talk_minutes": 40.0},
    }
    stayed = work(monday, "1002", at(MONDAY, 18, 5), calls=10, talk_each=90)
    assert {e.quota for e in stayed} == {"effective_calls", "talk_minutes"}
    (grace,) = monday.advance(at(MONDAY, 18, 30))
    assert (grace.kind, grace.seat, grace.makeup_day) == ("grace_shortfall", "1003", SUNDAY)
    assert dict(grace.shortfall) == {"talk_minutes": 40.0}
    assert monday.deficit("1003", SUNDAY) == {"talk_minutes": 40.0}
    assert monday.evaluate("1003", at(SUNDAY, 9)).tier == "make-up"


def test_a_short_robot_is_reported_but_never_owes_a_makeup_day() -> None:
    engine = engine_for("9001", start=at(MONDAY, 8))
    work(engine, "9001", at(MONDAY, 9, 30), calls=1500, talk_each=0)
    grace = [e for e in engine.advance(at(MONDAY, 19)) if e.kind == "grace_shortfall"]
    assert [(e.seat, dict(e.shortfall), e.makeup_day) for e in grace] == [
        ("9001", {"dials": 500.0}, None)
    ]
    assert engine.deficit("9001", SUNDAY) == {}


def test_leave_means_no_quota_and_no_events() -> None:
    engine = engine_for("1001", start=at(MONDAY, 8))
    engine.adjustments.leave("1001", MONDAY, by="HR", at=at(MONDAY, 8), reason="annual leave")
    assert engine.evaluate("1001", at(MONDAY, 18)).status == "off"
    assert engine.advance(at(MONDAY, 23)) == []


def test_half_day_halves_every_quota() -> None:
    engine = engine_for("1001", start=at(MONDAY, 8))
    engine.adjustments.half_day("1001", MONDAY, by="HR", at=at(MONDAY, 8), reason="doctor")
    work(engine, "1001", at(MONDAY, 13, 30), calls=60, talk_each=50, faxes=4, follow_ups=13)
    evaluation = engine.evaluate("1001", at(MONDAY, 18))
    assert {q: p.target for q, p in evaluation.quotas.items()} == {
        "talk_minutes": 50.0,
        "faxes": 4.0,
        "effective_calls": 60.0,
        "follow_ups": 12.5,
    }
    assert evaluation.status == "met"


def test_talk_across_local_midnight_feeds_both_days() -> None:
    engine = engine_for("1001", start=at(MONDAY, 8))
    engine.apply(call("1001", at(MONDAY, 23, 50), 1200))
    assert engine.actuals("1001", MONDAY)["talk_minutes"] == pytest.approx(10)
    assert engine.actuals("1001", MONDAY + dt.timedelta(days=1))["talk_minutes"] == 10
    assert engine.actuals("1001", MONDAY)["effective_calls"] == 1  # counted on the start day


# --- a week through the scheduler ----------------------------------------------------------


class _Fixed:
    def __init__(self, now: dt.datetime) -> None:
        self.current = now

    def now(self) -> dt.datetime:
        return self.current


class FakeClock(_Fixed):
    """``sleep`` jumps the clock, running the work planned for the time it skips."""

    def __init__(self, now: dt.datetime, plan: list[tuple[dt.datetime, Callable[[], None]]]):
        super().__init__(now)
        self.plan = sorted(plan, key=lambda item: item[0])
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        until = self.current + dt.timedelta(seconds=seconds)
        while self.plan and self.plan[0][0] <= until:
            self.current, action = self.plan.pop(0)
            action()
        self.current = until


def test_a_week_with_a_wednesday_shortfall_made_up_on_sunday() -> None:
    engine = engine_for("1001", start=at(MONDAY, 0))
    seen: list[QuotaEvent] = []
    delivered_at: list[dt.datetime] = []

    def workday(day: dt.date, calls: int, talk_each: float) -> Callable[[], None]:
        start = at(day, 9, 30)
        return lambda: seen.extend(
            work(engine, "1001", start, calls=calls, talk_each=talk_each, faxes=8, follow_ups=25)
        )

    def sunday() -> None:
        seen.extend(work(engine, "1001", at(SUNDAY, 9, 30), calls=10))

    # 120 calls of 50 s = 100 minutes; on Wednesday only 110 (of 60 s: talk is still met).
    week = [MONDAY + dt.timedelta(days=n) for n in range(5)]
    plan = [
        (at(d, 9, 30), workday(d, 110, 60) if d.weekday() == 2 else workday(d, 120, 50))
        for d in week
    ]
    plan.append((at(SUNDAY, 9, 30), sunday))
    clock = FakeClock(at(MONDAY, 0), plan)

    async def deliver(events: list[QuotaEvent]) -> None:
        delivered_at.append(clock.now())
        seen.extend(events)

    scheduler = QuotaScheduler(engine, clock, deliver, sleep=clock.sleep)
    while clock.now() < at(SUNDAY, 20):
        asyncio.run(scheduler.run_once())

    wednesday = MONDAY + dt.timedelta(days=2)
    shortfalls = [(e.kind, e.day, dict(e.shortfall)) for e in seen if "shortfall" in e.kind]
    assert shortfalls == [
        ("eod_shortfall", wednesday, {"effective_calls": 10.0}),
        ("grace_shortfall", wednesday, {"effective_calls": 10.0}),
    ]
    assert engine.deficit("1001", SUNDAY) == {"effective_calls": 10.0}
    sunday = [e for e in seen if e.day == SUNDAY]
    assert [(e.kind, e.quota) for e in sunday] == [
        ("quota_met", "effective_calls"),
        ("report_due", None),
    ]
    assert engine.evaluate("1001", at(SUNDAY, 20)).status == "met"
    assert not [e for e in seen if e.day == SUNDAY - dt.timedelta(days=1)]  # Saturday off
    # Timer, not polling: every delivery happened exactly at a checkpoint.
    assert all(e.at == when for e, when in _batches(seen, delivered_at))
    assert max(clock.sleeps) <= 3600


def _batches(
    events: list[QuotaEvent], delivered_at: list[dt.datetime]
) -> list[tuple[QuotaEvent, dt.datetime]]:
    timed = [e for e in events if e.kind != "quota_met"]
    return [(e, next(t for t in delivered_at if t >= e.at)) for e in timed]


# --- time zones ----------------------------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")
NY_POLICY = Policy.model_validate(
    {
        "version": "t",
        "sites": {"ny": {"timezone": "America/New_York", "workdays": ["sunday", "saturday"]}},
        "tiers": [{"name": "standard", "quotas": {"talk_minutes": 100}}],
    }
)
DST_START = dt.date(2026, 3, 8)  # a Sunday: 02:00 EST → 03:00 EDT


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_dialing_windows_are_wall_clock_on_the_dst_switch_day() -> None:
    site = NY_POLICY.sites["ny"]
    assert end_of_day(site, DST_START - dt.timedelta(days=1)).astimezone(dt.UTC) == utc(
        2026, 3, 7, 23
    )
    assert end_of_day(site, DST_START).astimezone(dt.UTC) == utc(2026, 3, 8, 22)
    assert dialing_progress(site, DST_START, utc(2026, 3, 8, 13, 20)) == 0.0  # 09:20 EDT
    assert dialing_progress(site, DST_START, utc(2026, 3, 8, 15, 45)) == pytest.approx(145 / 385)
    assert next_checkpoint(site, utc(2026, 3, 8, 6)) == at(DST_START, 11, 45, NEW_YORK)


def test_engine_expectations_follow_the_local_clock_across_dst() -> None:
    seat = SeatProfile("7001", "Ann", "default", "ny")
    engine = QuotaEngine(NY_POLICY, {"7001": seat}, start=utc(2026, 3, 8, 0))
    engine.apply(call("7001", utc(2026, 3, 8, 13, 30), 3600))  # 09:30 EDT
    engine.apply(call("7001", utc(2026, 3, 8, 4, 30), 600))  # 23:30 EST on the 7th
    evaluation = engine.evaluate("7001", utc(2026, 3, 8, 15, 45))
    assert evaluation.day == DST_START
    assert evaluation.quotas["talk_minutes"].actual == 60.0
    assert evaluation.quotas["talk_minutes"].expected == pytest.approx(100 * 145 / 385)
    assert engine.actuals("7001", DST_START - dt.timedelta(days=1)) == {
        "talk_minutes": 10.0,
        "dials": 1.0,
        "effective_calls": 1.0,
    }
    (eod,) = [e for e in engine.advance(utc(2026, 3, 8, 22)) if e.kind == "eod_shortfall"]
    assert (eod.kind, eod.at) == ("eod_shortfall", at(DST_START, 18, 0, NEW_YORK))


def test_shanghai_is_the_default_site_zone() -> None:
    policy = Policy.model_validate(
        {"version": "t", "sites": {"main": {}}, "tiers": [{"name": "s", "quotas": {}}]}
    )
    assert policy.sites["main"].timezone == "Asia/Shanghai"


def test_scheduler_delivers_what_is_due_then_sleeps_until_cancelled() -> None:
    engine = engine_for("1001", start=at(MONDAY, 17, 59))
    batches: list[list[QuotaEvent]] = []

    async def main() -> None:
        delivered = asyncio.Event()

        async def deliver(events: list[QuotaEvent]) -> None:
            batches.append(events)
            delivered.set()

        scheduler = QuotaScheduler(engine, _Fixed(at(MONDAY, 18, 1)), deliver)
        task = asyncio.create_task(scheduler.run())
        await asyncio.wait_for(delivered.wait(), 5)  # a hang guard, not a timing assert
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert [[(e.kind, e.seat) for e in batch] for batch in batches] == [[("eod_shortfall", "1001")]]


def test_metrics_provider_reports_talk_in_seconds_and_skips_seats_off_today(
    monday: QuotaEngine,
) -> None:
    from ctid.metrics.quota import Pace
    from ctid.policy.provider import EngineQuotaProvider

    monday.adjustments.leave("1002", MONDAY, by="HR", at=at(MONDAY, 8), reason="sick")
    provider = EngineQuotaProvider(monday)
    quotas = provider.seat_quotas(at(MONDAY, 11, 45).timestamp(), provider.quota_seats())
    assert "1002" not in quotas
    talk = next(q for q in quotas["1001"] if q.quota == "talk_seconds")
    assert (talk.target, talk.attained, talk.pace) == (6000.0, 3600.0, Pace.ON_TRACK)
    assert {q.pace for q in quotas["1003"]} == {Pace.BEHIND}


@pytest.mark.parametrize(
    ("hour", "minute"), [(7, 0), (9, 20), (10, 30), (12, 0), (15, 0), (17, 30), (18, 5), (23, 0)]
)
def test_floor_progress_gives_the_statuses_evaluate_gives(
    monday: QuotaEngine, hour: int, minute: int
) -> None:
    # The per-scrape path works the site's day out once for every seat; it must not differ
    # from evaluating each seat (before the windows, in them, at lunch, after the end of day).
    monday.adjustments.leave("1002", MONDAY, by="HR", at=at(MONDAY, 8), reason="sick")
    now = at(MONDAY, hour, minute)
    expected = {
        seat: [(q, p.target, p.actual, p.status) for q, p in evaluation.quotas.items()]
        for seat in monday.seat_ids()
        if (evaluation := monday.evaluate(seat, now)).quotas
    }
    assert dict(monday.floor_progress(now)) == expected
    assert sorted(expected) == ["1001", "1003", "9001"]  # 1002 is on leave


def test_a_running_engine_keeps_only_recent_days() -> None:
    # One day per seat kept for the daemon's lifetime would grow without bound.
    first = dt.date(2026, 11, 2)
    engine = engine_for("1001", start=at(first, 8))
    for offset in range(40):
        day = first + dt.timedelta(days=offset)
        work(engine, "1001", at(day, 10), calls=2)
        engine.advance(at(day, 23))
    last = first + dt.timedelta(days=39)
    kept = sorted(day for _seat, day in engine._counters)  # the engine's own bookkeeping
    assert kept[0] >= last - KEEP_DAYS
    assert kept[-1] == last
    assert len(kept) <= KEEP_DAYS.days + 1
    assert engine.actuals("1001", last)  # today's figures are untouched
