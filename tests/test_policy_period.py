"""Quota attainment and fines over a period (ctid.policy.period), numbers worked out by hand.

The example policy (examples/policy.toml): standard 100 talk minutes, 120 effective calls,
8 faxes, 25 follow-ups a day; first half-month (days 0-14 after hiring) 120 / 80 / 12 / 15;
new staff 120 / 120 / 12 / 25; robots 2000 dials; 5 yuan per missing effective call;
holidays 1, 2, 5, 6, 7 October 2026 and Saturday 10 October worked; make-up on Sunday.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ctid.policy import Adjustments, QuotaEngine, load_policy, resolve_seats
from ctid.policy.period import (
    Quantities,
    SeatPeriod,
    centre_totals,
    seat_period,
    team_totals,
)
from ctid.policy.schema import Fines
from ctid.store.reporting import PeriodKind, period_for

POLICY = load_policy(Path(__file__).parent.parent / "examples" / "policy.toml")
SEATS = resolve_seats(POLICY)
SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2026, 11, 23)
SUNDAY = dt.date(2026, 11, 29)
BY, REASON = "王经理", "test"


def day(month: int, day_of_month: int, year: int = 2026) -> dt.date:
    return dt.date(year, month, day_of_month)


def days_of(kind: PeriodKind, date: dt.date) -> list[dt.date]:
    return list(period_for(kind, date).days())


def evaluate(
    seat: str,
    days: list[dt.date],
    actuals: dict[dt.date, Quantities] | None = None,
    adjustments: Adjustments | None = None,
) -> SeatPeriod:
    return seat_period(POLICY, SEATS[seat], days, actuals or {}, adjustments or Adjustments())


def noon(date: dt.date) -> dt.datetime:
    return dt.datetime.combine(date, dt.time(12), tzinfo=SHANGHAI)


# --- periods -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "first", "last"),
    [
        (day(2, 1), day(2, 1), day(2, 10)),
        (day(2, 10), day(2, 1), day(2, 10)),
        (day(2, 11), day(2, 11), day(2, 20)),
        (day(2, 20), day(2, 11), day(2, 20)),
        (day(2, 21), day(2, 21), day(2, 28)),  # 8 days: February 2026
        (day(2, 29, 2028), day(2, 21, 2028), day(2, 29, 2028)),  # 9 days in a leap year
        (day(4, 30), day(4, 21), day(4, 30)),  # 10 days
        (day(1, 31), day(1, 21), day(1, 31)),  # 11 days
        (day(12, 25), day(12, 21), day(12, 31)),
    ],
)
def test_dekads_are_days_1_to_10_11_to_20_and_21_to_the_month_end(
    date: dt.date, first: dt.date, last: dt.date
) -> None:
    period = period_for("dekad", date)
    assert (period.kind, period.first, period.last, period.through) == ("dekad", first, last, date)


def test_a_period_is_counted_up_to_and_including_the_report_date() -> None:
    assert days_of("monthly", day(11, 3)) == [day(11, 1), day(11, 2), day(11, 3)]
    assert days_of("weekly", day(11, 25)) == [day(11, 23), day(11, 24), day(11, 25)]
    assert days_of("daily", day(11, 25)) == [day(11, 25)]


# --- targets -------------------------------------------------------------------------------


def test_a_tier_boundary_inside_a_week_changes_the_targets_that_day() -> None:
    # 1002 was hired on 16 Nov: 30 Nov is day 14 (first half-month), 1 Dec day 15 (new staff,
    # as it has no prior experience). Week of 30 Nov, through Friday 4 Dec: 5 workdays.
    result = evaluate("1002", days_of("weekly", day(12, 4)))
    assert result.tiers == ("first_half_month", "new_staff")
    assert result.targets == {
        "talk_minutes": 120 * 5,
        "effective_calls": 80 + 120 * 4,
        "faxes": 12 * 5,
        "follow_ups": 15 + 25 * 4,
    }


def test_no_targets_before_the_hire_date() -> None:
    # Dekad 11-20 Nov: 11-13 (Wed-Fri) before 1002 was hired, 16-20 first half-month.
    result = evaluate("1002", days_of("dekad", day(11, 20)))
    assert result.targets["talk_minutes"] == 120 * 5
    assert result.targets["effective_calls"] == 80 * 5


def test_a_half_day_and_a_field_visit_reduce_their_days_only() -> None:
    # 1003 is new staff (120 talk, 120 calls, 12 faxes, 25 follow-ups). Monday a half day,
    # Tuesday a 3 h field visit (calls × 6/9 = 80, talk untouched), Wednesday as usual.
    adjustments = Adjustments()
    adjustments.half_day("1003", MONDAY, by=BY, at=noon(MONDAY), reason=REASON)
    tuesday = MONDAY + dt.timedelta(days=1)
    adjustments.field_visit("1003", tuesday, 3, by=BY, at=noon(tuesday), reason=REASON)
    days = days_of("weekly", MONDAY + dt.timedelta(days=2))
    talk: dict[dt.date, Quantities] = {
        d: {"talk_minutes": 100.0, "effective_calls": 86.0} for d in days
    }
    result = evaluate("1003", days, talk, adjustments)
    assert result.targets["talk_minutes"] == pytest.approx(60 + 120 + 120)
    assert result.targets["effective_calls"] == pytest.approx(60 + 80 + 120)
    assert result.targets["faxes"] == pytest.approx(6 + 12 + 12)
    assert result.targets["follow_ups"] == pytest.approx(12.5 + 25 + 25)
    assert result.attainment["talk_minutes"] == pytest.approx(300 / 300)
    assert result.attainment["effective_calls"] == pytest.approx(258 / 260)


def test_holidays_weekends_and_leave_have_no_targets_and_a_worked_saturday_has() -> None:
    # Dekad 1-10 Oct 2026: 1, 2, 5, 6, 7 are holidays, 3-4 a weekend, 8-9 workdays and
    # Saturday 10 worked (调休). Leave on Friday 9: 1001 owes two standard days.
    adjustments = Adjustments()
    adjustments.leave("1001", day(10, 9), by=BY, at=noon(day(10, 9)), reason=REASON)
    result = evaluate("1001", days_of("dekad", day(10, 10)), adjustments=adjustments)
    assert [d.day for d in result.days if d.targets] == [day(10, 8), day(10, 10)]
    assert result.targets["talk_minutes"] == 200
    # Nothing done: both days' 120 calls are missing and their make-up Sunday (11 Oct) is
    # after the dekad, so each is fined on its own day.
    assert result.fine == 2 * 120 * 5


def test_a_dekad_at_the_month_end_sums_its_workdays() -> None:
    # 21-31 Jan 2026 holds 8 workdays; 21-28 Feb 2026 holds 5.
    assert evaluate("1001", days_of("dekad", day(1, 31))).targets["talk_minutes"] == 800
    assert evaluate("1001", days_of("dekad", day(2, 28))).targets["talk_minutes"] == 500


def test_attainment_is_none_without_a_target_or_without_a_count() -> None:
    adjustments = Adjustments()
    for d in days_of("weekly", day(11, 27)):
        adjustments.leave("1001", d, by=BY, at=noon(d), reason=REASON)
    result = evaluate("1001", days_of("weekly", day(11, 27)), adjustments=adjustments)
    assert result.targets == {}
    assert set(result.attainment.values()) == {None}
    assert result.fine == 0
    # Follow-ups are not counted by the tallies: no actual, no attainment, no fine.
    working = evaluate("1001", [MONDAY], {MONDAY: {"effective_calls": 120.0}})
    assert working.actuals["follow_ups"] is None
    assert working.attainment["follow_ups"] is None
    assert working.attainment["effective_calls"] == 1.0
    assert working.fine == 0


# --- fines ---------------------------------------------------------------------------------


def calls(*per_day: tuple[dt.date, float]) -> dict[dt.date, Quantities]:
    return {d: {"effective_calls": n} for d, n in per_day}


def test_fines_add_up_each_days_shortfall_not_the_period_total() -> None:
    # 150 calls Monday, 90 Tuesday, 120 Wednesday: 360 of 360 for the three days, but Tuesday
    # was 30 short. Its make-up Sunday is after the report date: fined on Tuesday.
    tuesday, wednesday = MONDAY + dt.timedelta(days=1), MONDAY + dt.timedelta(days=2)
    actuals = calls((MONDAY, 150), (tuesday, 90), (wednesday, 120))
    result = evaluate("1001", days_of("weekly", wednesday), actuals)
    assert result.attainment["effective_calls"] == pytest.approx(1.0)
    assert result.fine == 30 * 5
    assert [d.fine for d in result.days] == [0, 30 * 5, 0]


@pytest.mark.parametrize(("sunday_calls", "fine"), [(0, 10 * 5), (4, 6 * 5), (10, 0), (15, 0)])
def test_a_shortfall_is_fined_once_on_its_make_up_day_for_what_is_still_missing(
    sunday_calls: float, fine: float
) -> None:
    week = days_of("weekly", SUNDAY)
    wednesday = MONDAY + dt.timedelta(days=2)
    actuals: dict[dt.date, Quantities] = {
        d: {
            "effective_calls": 110.0 if d == wednesday else 120.0,
            "talk_minutes": 100.0,
            "faxes": 8.0,
        }
        for d in week[:5]
    }
    actuals[SUNDAY] = {"effective_calls": sunday_calls}
    result = evaluate("1001", week, actuals)
    by_day = {d.day: d for d in result.days}
    assert by_day[wednesday].fine == 0
    assert by_day[SUNDAY].carried == {"effective_calls": 10}
    assert result.fine == fine
    # Sunday's work counts in the week's actual; the target stays the five days' own.
    assert result.targets["effective_calls"] == 600
    assert result.actuals["effective_calls"] == 590 + sunday_calls


def test_a_robot_owes_no_make_up_day_and_is_fined_on_the_day() -> None:
    policy = POLICY.model_copy(update={"fines": Fines(dials=0.01)})
    week = days_of("weekly", SUNDAY)
    wednesday = MONDAY + dt.timedelta(days=2)
    dials: dict[dt.date, Quantities] = {
        d: {"dials": 1000.0 if d == wednesday else 2000.0} for d in week[:5]
    }
    result = seat_period(policy, SEATS["9001"], week, dials, Adjustments())
    assert {d.day: d.fine for d in result.days if d.fine} == {wednesday: pytest.approx(10.0)}
    assert all(not d.carried for d in result.days)


def test_the_carried_deficit_is_the_one_the_quota_engine_records() -> None:
    """The live engine, driven through the same week, owes the same on Sunday."""
    engine = QuotaEngine(POLICY, {"1001": SEATS["1001"]}, Adjustments(), start=noon(MONDAY))
    week = days_of("weekly", SUNDAY)
    counts: dict[dt.date, Quantities] = {}
    for offset, d in enumerate(week[:5]):
        # Calls 0, 7, 14, 21, 28 short and talk 20..16 minutes short; faxes met.
        counts[d] = {"effective_calls": 120 - 7 * offset, "talk_minutes": 80.0 + offset}
        counts[d]["faxes"] = 8.0
        # The engine also hears of the follow-ups (the CRM's): met, so nothing owed for them.
        for quota, amount in (counts[d] | {"follow_ups": 25.0}).items():
            engine.add("1001", d, quota, amount, noon(d))
        engine.advance(dt.datetime.combine(d, dt.time(23), tzinfo=SHANGHAI))
    result = evaluate("1001", week, counts)
    assert result.days[-1].carried == pytest.approx(engine.deficit("1001", SUNDAY))
    assert result.days[-1].carried["effective_calls"] == 7 + 14 + 21 + 28


# --- roll-ups ------------------------------------------------------------------------------


def test_team_targets_count_per_workday_and_the_centre_sums_the_teams() -> None:
    days = days_of("weekly", day(11, 27))  # five workdays
    team_a = [
        evaluate("1001", days, calls((MONDAY, 100.0))),
        evaluate("1002", days, calls((MONDAY, 50.0))),
    ]
    team_b = [evaluate("1003", days, calls((MONDAY, 40.0)))]
    a = team_totals(POLICY, "team-a", team_a, days)
    b = team_totals(POLICY, "team-b", team_b, days)
    assert (a.leader, a.seats) == ("王经理", 2)
    assert a.targets["effective_calls"] == 120 * 5 + 80 * 5  # no team target: the seats' sum
    assert b.targets["effective_calls"] == 500 * 5  # team-b's own 500 a day
    assert b.targets["talk_minutes"] == 120 * 5  # left out of the team target: the seats' sum
    assert a.actuals["effective_calls"] == 150
    assert a.attainment["effective_calls"] == pytest.approx(150 / 1000)
    assert a.actuals["follow_ups"] is None
    centre = centre_totals([a, b])
    assert centre.seats == 3
    assert centre.targets["effective_calls"] == 1000 + 2500
    assert centre.actuals["effective_calls"] == 190
    assert centre.fine == a.fine + b.fine == sum(s.fine for s in [*team_a, *team_b])
