"""The compliance rules as pure objects: hours across zones and DST, caps at their
boundaries, abandon-rate arithmetic, the disclosure deadline."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ctid.compliance.abandon import AbandonRate, Breach
from ctid.compliance.disclosure import DialledCall, DisclosureWatch
from ctid.compliance.frequency import DAY, WEEK, FrequencyCaps
from ctid.compliance.hours import CallingHours
from ctid.compliance.numbers import ZoneFinder, normalise
from ctid.compliance.settings import CallingHoursSettings, Cap

UTC = dt.UTC
ANYTIME = ["00:00-23:59"]
NEW_YORK = "+12125551234"
LOS_ANGELES = "+13105551234"
SHANGHAI = "+8613800138000"


def at(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def hours(site_windows: list[str] = ANYTIME, site: str = "UTC", **kw: object) -> CallingHours:
    settings = CallingHoursSettings(site_windows=site_windows, **kw)  # type: ignore[arg-type]
    return CallingHours(settings, ZoneInfo(site), "US")


# --- calling hours ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "when", "allowed"),
    [
        (NEW_YORK, at(2026, 6, 15, 12, 0), True),  # 08:00 EDT: the window opens
        (NEW_YORK, at(2026, 6, 15, 11, 59), False),  # 07:59 EDT
        (NEW_YORK, at(2026, 6, 16, 0, 59), True),  # 20:59 EDT
        (NEW_YORK, at(2026, 6, 16, 1, 0), False),  # 21:00 EDT: the end is exclusive
        (LOS_ANGELES, at(2026, 6, 15, 12, 0), False),  # 05:00 PDT at the same instant
        (LOS_ANGELES, at(2026, 6, 15, 15, 0), True),  # 08:00 PDT
        (SHANGHAI, at(2026, 6, 15, 12, 59), True),  # 20:59 CST
        (SHANGHAI, at(2026, 6, 15, 13, 0), False),  # 21:00 CST
    ],
)
def test_callee_window_is_judged_in_the_callees_own_zone(
    number: str, when: float, allowed: bool
) -> None:
    assert (hours().violation(number, when) is None) is allowed


@pytest.mark.parametrize(
    ("when", "allowed"),
    [
        (at(2026, 3, 7, 12, 30), False),  # Saturday: EST (UTC-5) → 07:30
        (at(2026, 3, 8, 12, 30), True),  # spring forward: EDT (UTC-4) → 08:30
        (at(2026, 10, 31, 12, 30), True),  # EDT → 08:30
        (at(2026, 11, 1, 12, 30), False),  # fall back: EST → 07:30
    ],
)
def test_the_same_utc_time_flips_on_the_dst_switch_day(when: float, allowed: bool) -> None:
    assert (hours().violation(NEW_YORK, when) is None) is allowed


@pytest.mark.parametrize(
    ("local", "allowed"),
    [
        ((9, 19), False),
        ((9, 20), True),
        ((11, 44), True),
        ((11, 45), False),
        ((13, 29), False),
        ((13, 30), True),
        ((17, 29), True),
        ((17, 30), False),
    ],
)
def test_site_windows_are_judged_in_site_time(local: tuple[int, int], allowed: bool) -> None:
    rule = hours(["09:20-11:45", "13:30-17:30"], site="Europe/Berlin", callee_window="00:00-23:59")
    # 2026-07-01 is summer time in Berlin: local = UTC + 2.
    when = dt.datetime(2026, 7, 1, *local, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    reason = rule.violation(SHANGHAI, when)
    assert (reason is None) is allowed
    if not allowed:
        assert reason is not None
        assert "site time" in reason


def test_prefix_override_wins_and_the_longest_prefix_wins() -> None:
    finder = ZoneFinder("US", ZoneInfo("UTC"), {"7": "America/Denver", "720": "Asia/Shanghai"})
    assert finder.zones("7203000104") == (ZoneInfo("Asia/Shanghai"),)
    assert finder.zones("7103999110") == (ZoneInfo("America/Denver"),)


def test_the_lab_numbers_parse_as_us_numbers_without_an_override() -> None:
    finder = ZoneFinder("US", ZoneInfo("UTC"), {})
    assert finder.zones("7203000104") == (ZoneInfo("America/Denver"),)
    assert normalise("7203000104", "US") == "+17203000104"


def test_a_number_without_a_known_zone_falls_back_to_the_site_zone() -> None:
    finder = ZoneFinder("US", ZoneInfo("Europe/Berlin"), {})
    assert finder.zones("555") == (ZoneInfo("Europe/Berlin"),)


def test_a_number_spanning_zones_must_fit_every_one() -> None:
    # Toll-free +1 800 spans Pago Pago (UTC-11) to Guam (UTC+10).
    rule = hours()
    assert rule.violation(NEW_YORK, at(2026, 6, 15, 12, 0)) is None  # 08:00 in New York
    reason = rule.violation("+18005551234", at(2026, 6, 15, 12, 0))
    assert reason is not None
    assert "outside the calling window" in reason
    # 22:00 UTC: 08:00 in Guam, 11:00 in Pago Pago, 19:30 in St John's: fine everywhere.
    assert rule.violation("+18005551234", at(2026, 6, 15, 22, 0)) is None


# --- contact frequency -----------------------------------------------------------------

T0 = at(2026, 6, 15, 9, 0)


def test_the_fourth_attempt_within_24_hours_breaks_a_cap_of_three() -> None:
    caps = FrequencyCaps(Cap(per_day=3), Cap())
    for i in range(3):
        assert caps.violation(NEW_YORK, "1001", T0 + i) is None
        caps.record(NEW_YORK, "1001", T0 + i)
    assert (
        caps.violation(NEW_YORK, "1001", T0 + DAY - 0.001)
        == "site-wide: 3 attempts in 24 h (cap 3)"
    )
    # Exactly 24 h after the first attempt it has left the window.
    assert caps.violation(NEW_YORK, "1001", T0 + DAY) is None


def test_the_weekly_cap_counts_seven_rolling_days() -> None:
    caps = FrequencyCaps(Cap(per_day=3, per_week=5), Cap())
    for day in range(5):
        caps.record(NEW_YORK, None, T0 + day * DAY)
    assert (
        caps.violation(NEW_YORK, None, T0 + WEEK - 0.001)
        == "site-wide: 5 attempts in 7 days (cap 5)"
    )
    assert caps.violation(NEW_YORK, None, T0 + WEEK) is None


def test_the_seat_cap_applies_per_seat_and_the_site_cap_across_seats() -> None:
    caps = FrequencyCaps(Cap(per_day=3), Cap(per_day=2))
    caps.record(NEW_YORK, "1001", T0)
    caps.record(NEW_YORK, "1001", T0 + 1)
    assert caps.violation(NEW_YORK, "1001", T0 + 2) == "seat 1001: 2 attempts in 24 h (cap 2)"
    assert caps.violation(NEW_YORK, "1002", T0 + 2) is None
    caps.record(NEW_YORK, "1002", T0 + 2)
    assert caps.violation(NEW_YORK, "1003", T0 + 3) == "site-wide: 3 attempts in 24 h (cap 3)"
    assert caps.violation(LOS_ANGELES, "1001", T0 + 3) is None


# --- abandoned-call rate ---------------------------------------------------------------


def test_abandon_rate_against_a_hand_computed_example() -> None:
    rate = AbandonRate(ceiling=0.03, window=DAY, min_calls=20)
    # 32 answered calls, then 1 abandoned: 1/33 = 3.03 % > 3 %.
    for t in range(32):
        assert rate.record("sales", float(t), abandoned=False) is None
    breach = rate.record("sales", 32.0, abandoned=True)
    assert breach == Breach("sales", offered=33, abandoned=1)
    assert breach.rate == pytest.approx(0.030303, abs=1e-6)
    # One more answered call: 1/34 = 2.94 %, back under; the breach is reported once.
    assert rate.record("sales", 33.0, abandoned=False) is None
    # A second abandon: 2/35 = 5.71 %, a new crossing.
    assert rate.record("sales", 34.0, abandoned=True) == Breach("sales", 35, 2)
    # A day after t=0 the call at t=0 has left the window: 34 offered, 2 abandoned.
    assert rate.rate("sales", DAY) == (34, 2)
    assert rate.rate("sales", DAY + 32.0) == (2, 1)


def test_exactly_the_ceiling_is_not_a_breach_and_small_samples_are_not_judged() -> None:
    rate = AbandonRate(ceiling=0.03, window=DAY, min_calls=20)
    for t in range(97):
        rate.record("sales", float(t), abandoned=False)
    for t in range(97, 100):
        assert rate.record("sales", float(t), abandoned=True) is None  # ≤ 3/100 = 3 %
    small = AbandonRate(ceiling=0.03, window=DAY, min_calls=20)
    assert small.record("sales", 0.0, abandoned=True) is None  # 1/1, but only one call


# --- disclosure ------------------------------------------------------------------------


def watched(linkedid: str = "L1") -> DialledCall:
    return DialledCall("pbx", linkedid, "1001", NEW_YORK, "U1")


def test_disclosure_deadline_fires_exactly_n_seconds_after_the_answer() -> None:
    watch = DisclosureWatch(within=15.0)
    watch.dialled(watched())
    watch.answered("pbx", "L1", 100.0)
    assert watch.due(114.999) == []
    (late,) = watch.due(115.0)
    assert (late.linkedid, late.answered_at) == ("L1", 100.0)
    assert watch.due(200.0) == []  # reported once


def test_a_disclosed_or_ended_call_is_never_due_and_unanswered_calls_have_no_deadline() -> None:
    watch = DisclosureWatch(within=15.0)
    for linkedid in ("said", "ended", "ringing"):
        watch.dialled(watched(linkedid))
    watch.answered("pbx", "said", 0.0)
    watch.answered("pbx", "ended", 0.0)
    watch.disclosed("pbx", "said")
    watch.ended("pbx", "ended")
    assert watch.due(1000.0) == []
    assert len(watch) == 1
