"""Performance points, pay estimate and leaderboards: pure, numbers worked out by hand from the
example policy (examples/policy.toml): standard seat 1001, 100 talk minutes, 120 effective
calls, 8 faxes, 25 follow-ups a day; +1 point per 1 % of effective-call attainment over 100 %,
-2 per missed workday, -5 per falsified follow-up, -10 per do_not_call violation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ctid.policy import Adjustments, load_policy, resolve_seats
from ctid.policy.leaderboard import Contender, leaderboards, ranked
from ctid.policy.pay import estimate
from ctid.policy.period import (
    MEASURED_WITH_FOLLOW_UPS,
    ClaimCounts,
    Quantities,
    SeatPeriod,
    seat_period,
)
from ctid.policy.scorecard import band, percent_over, score

POLICY = load_policy(Path(__file__).parent.parent / "examples" / "policy.toml")
SEATS = resolve_seats(POLICY)
WEEK = [dt.date(2026, 11, 23) + dt.timedelta(days=n) for n in range(5)]  # Monday-Friday


def met(calls: float) -> Quantities:
    return {"talk_minutes": 100, "effective_calls": calls, "faxes": 8, "follow_ups": 25}


def period(calls: list[float], claims: ClaimCounts | None = None) -> SeatPeriod:
    actuals = {day: met(n) for day, n in zip(WEEK, calls, strict=True)}
    return seat_period(
        POLICY, SEATS["1001"], WEEK, actuals, Adjustments(), MEASURED_WITH_FOLLOW_UPS, claims
    )


def test_attainment_over_100_percent_earns_a_point_per_whole_percent() -> None:
    week = period([150] * 5)  # 750 of 600: 125 %
    points = score(POLICY.scorecard, week, {})
    assert (points.attainment, points.missed_workdays, points.total) == (25, 0, 125)
    assert band(POLICY.scorecard, points.total) == "bonus"


def test_a_missed_workday_costs_points_even_when_the_week_is_over_target() -> None:
    week = period([150, 100, 150, 150, 150])  # 700 of 600: 116.67 % → 16 points
    assert week.missed_workdays == 1
    points = score(POLICY.scorecard, week, {"do_not_call": 1, "unpriced_rule": 4})
    assert points.total == 100 + 16 - 2 - 10
    assert band(POLICY.scorecard, points.total) == "normal"


def test_falsified_follow_ups_cost_points_and_the_policy_fine() -> None:
    week = period([120] * 5, ClaimCounts(claimed=7, verified=2, a_class=1, b_class=1))
    assert week.claim_fine == 5 * 50
    assert week.fine == 250  # no quota short: only the falsified claims
    points = score(POLICY.scorecard, week, {})
    assert points.total == 100 - 25
    assert band(POLICY.scorecard, points.total) == "deduction"


def test_float_attainment_is_not_short_of_its_whole_percent() -> None:
    assert percent_over(1.15) == 15
    assert percent_over(0.99) == 0
    assert percent_over(None) == 0


def test_pay_estimate_is_the_example_formula() -> None:
    assert POLICY.pay is not None
    week = period([120] * 5, ClaimCounts(claimed=3, verified=3, a_class=2, b_class=1))
    pay = estimate(POLICY.pay, 600, week, 12345.67)
    assert pay.total == pytest.approx(1000 + 0.5 * 600 + 100 * 2 + 50 * 1 + 123.4567)


def test_ties_share_a_rank_and_a_seat_tied_with_the_last_place_is_shown() -> None:
    field = [
        Contender("a", "", "t1", 1.2, 10),
        Contender("b", "", "t1", 1.1, 30),
        Contender("c", "", "t2", 1.1, 20),
        Contender("d", "", "t2", None, 0),
        Contender("e", "", "t2", 0.5, 20),
    ]
    by_calls = ranked(field, "effective_calls", 2)
    assert [(p.rank, p.seat) for p in by_calls] == [(1, "b"), (2, "c"), (2, "e")]
    by_attainment = ranked(field, "attainment", 1)
    assert [(p.rank, p.seat) for p in by_attainment] == [(1, "a")]
    boards = leaderboards(field, 1)
    assert [(b.scope, b.measure) for b in boards][-2:] == [
        ("centre", "attainment"),
        ("centre", "effective_calls"),
    ]
    t2 = next(b for b in boards if (b.scope, b.measure) == ("t2", "attainment"))
    assert [p.seat for p in t2.placings] == ["c"]  # d has no target: not ranked
