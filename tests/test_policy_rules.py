"""Policy file validation, tier boundaries, the site calendar and per-day adjustments."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ctid.config import SeatSettings
from ctid.errors import PolicyError
from ctid.policy import Adjustments, SeatProfile, check_policy, choose_tier, load_policy
from ctid.policy.adjustments import adjusted_targets
from ctid.policy.loader import resolve_seats
from ctid.policy.tiers import add_months
from ctid.policy.workday import checkpoints, dialing_progress, is_workday, makeup_day_after

EXAMPLE = Path(__file__).parent.parent / "examples" / "policy.toml"
POLICY = load_policy(EXAMPLE)
SITE = POLICY.sites["shanghai"]
AT = dt.datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def tier_on(day: dt.date, hire: dt.date | None, prior: float | None = 5.0) -> str:
    seat = SeatProfile("s", "s", "team-a", "shanghai", "human", hire, prior)
    return choose_tier(POLICY.tiers, seat, day).name


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- policy file ---------------------------------------------------------------------------


def test_example_policy_is_valid() -> None:
    assert check_policy(EXAMPLE) == []


def test_check_names_key_and_line_of_a_bad_value(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'timezone = "Asia/Shanghai"', 'timezone = "Asia/Shanghi"'
    )
    line = text.splitlines().index('timezone = "Asia/Shanghi"') + 1
    problems = check_policy(write(tmp_path, text))
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'policy.toml'}:{line}: sites.shanghai.timezone:")
    assert "unknown time zone" in problems[0]


def test_check_finds_the_key_inside_the_nth_array_entry(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "hire_date = 2026-08-01", 'hire_date = "last summer"'
    )
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "last summer" in row)
    (problem,) = check_policy(write(tmp_path, text))
    assert f":{line}: seats[2].hire_date:" in problem


def test_check_reports_toml_syntax_with_its_line(tmp_path: Path) -> None:
    (problem,) = check_policy(write(tmp_path, 'version = "1"\n[sites.x\n'))
    assert "invalid TOML" in problem
    assert "line 2" in problem


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[tiers]]\nname='a'\nwhen={kind='robot'}\nquotas={dials=1}", "last tier must have no"),
        ("[teams.t]\nsite='nowhere'\n[[tiers]]\nname='a'\nquotas={}", "unknown site 'nowhere'"),
        ("[[seats]]\nid='1'\nteam='ghost'\n[[tiers]]\nname='a'\nquotas={}", "unknown team"),
    ],
)
def test_check_rejects_inconsistent_references(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, f'version = "1"\n[sites.main]\n{text}\n')
    problems = check_policy(path)
    assert any(message in p for p in problems), problems


def test_dialing_window_outside_the_day_is_rejected(tmp_path: Path) -> None:
    text = 'version="1"\n[sites.main]\ndialing_windows=[["17:30","18:30"]]\n'
    text += "[[tiers]]\nname='a'\nquotas={}\n"
    (problem,) = check_policy(write(tmp_path, text))
    assert "sites.main:" in problem
    assert "17:30-18:30" in problem


def test_load_policy_raises_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="version"):
        load_policy(write(tmp_path, "[sites.main]\n[[tiers]]\nname='a'\nquotas={}\n"))


def test_policy_seat_keys_override_the_main_config() -> None:
    config = {
        "1001": SeatSettings(id="1001", name="张伟", team="team-b", hire_date=dt.date(2020, 1, 1)),
        "2000": SeatSettings(id="2000", team="team-a", kind="robot"),
    }
    seats = resolve_seats(POLICY, config)
    assert seats["1001"].name == "张伟"
    assert seats["1001"].team == "team-a"  # the policy says so
    assert seats["1001"].hire_date == dt.date(2024, 3, 1)
    assert seats["2000"].kind == "robot"
    assert seats["9001"].kind == "robot"


# --- tiers ---------------------------------------------------------------------------------


def test_first_half_month_is_days_0_to_14() -> None:
    hire = dt.date(2026, 11, 16)
    assert tier_on(hire, hire) == "first_half_month"
    assert tier_on(hire + dt.timedelta(days=14), hire) == "first_half_month"
    assert tier_on(hire + dt.timedelta(days=15), hire) == "new_staff"


def test_less_than_six_months_ends_on_the_six_month_anniversary() -> None:
    hire = dt.date(2026, 5, 23)
    assert tier_on(dt.date(2026, 11, 22), hire) == "new_staff"
    assert tier_on(dt.date(2026, 11, 23), hire) == "standard"


def test_month_end_hire_dates_clamp_to_the_shorter_month() -> None:
    assert add_months(dt.date(2026, 8, 31), 6) == dt.date(2027, 2, 28)
    assert tier_on(dt.date(2027, 2, 27), dt.date(2026, 8, 31)) == "new_staff"
    assert tier_on(dt.date(2027, 2, 28), dt.date(2026, 8, 31)) == "standard"


def test_less_than_one_year_prior_experience_is_new_staff_whatever_the_tenure() -> None:
    old_hand = dt.date(2020, 1, 1)
    assert tier_on(AT.date(), old_hand, prior=0.99) == "new_staff"
    assert tier_on(AT.date(), old_hand, prior=1.0) == "standard"


def test_unknown_facts_never_lower_the_quota() -> None:
    assert tier_on(AT.date(), None, prior=None) == "standard"
    assert tier_on(AT.date(), dt.date(2020, 1, 1), prior=None) == "standard"


# --- calendar ------------------------------------------------------------------------------


def test_holidays_and_adjusted_working_weekends() -> None:
    assert is_workday(SITE, dt.date(2026, 11, 23))  # Monday
    assert not is_workday(SITE, dt.date(2026, 11, 29))  # Sunday
    assert not is_workday(SITE, dt.date(2026, 10, 1))  # National Day, a Thursday
    assert is_workday(SITE, dt.date(2026, 10, 10))  # the Saturday worked instead


def test_makeup_day_is_the_next_sunday_that_is_no_holiday() -> None:
    assert makeup_day_after(SITE, dt.date(2026, 11, 23)) == dt.date(2026, 11, 29)
    assert makeup_day_after(SITE, dt.date(2026, 11, 29)) == dt.date(2026, 12, 6)
    holiday_sunday = SITE.model_copy(update={"holidays": [dt.date(2026, 11, 29)]})
    assert makeup_day_after(holiday_sunday, dt.date(2026, 11, 23)) == dt.date(2026, 12, 6)


def test_expected_progress_is_pro_rata_over_dialing_windows_only() -> None:
    day = AT.date()
    at = AT.replace
    assert dialing_progress(SITE, day, at(hour=9, minute=20)) == 0.0
    assert dialing_progress(SITE, day, at(hour=11, minute=45)) == pytest.approx(145 / 385)
    assert dialing_progress(SITE, day, at(hour=13, minute=30)) == pytest.approx(145 / 385)
    assert dialing_progress(SITE, day, at(hour=17, minute=30)) == 1.0


def test_checkpoints_of_a_day_in_order() -> None:
    times = [(at.strftime("%H:%M"), kind.value) for at, kind in checkpoints(SITE, AT.date())]
    assert times == [
        ("11:45", "pace"),
        ("15:30", "pace"),
        ("17:00", "pace"),
        ("17:50", "report"),
        ("18:00", "end_of_day"),
        ("18:30", "grace_end"),
    ]


# --- adjustments ---------------------------------------------------------------------------

BASE = {"talk_minutes": 100.0, "effective_calls": 120.0, "follow_ups": 25.0}


def test_leave_half_day_field_visit_and_override() -> None:
    store = Adjustments()
    day = AT.date()
    store.field_visit("1001", day, 3, by="王经理", at=AT, reason="client visit")
    visit = adjusted_targets(BASE, store.for_day("1001", day), 9.0, ["effective_calls"])
    assert visit == {"talk_minutes": 100.0, "effective_calls": 80.0, "follow_ups": 25.0}
    store.half_day("1001", day, by="王经理", at=AT, reason="doctor")
    both = adjusted_targets(BASE, store.for_day("1001", day), 9.0, ["effective_calls"])
    assert both == {"talk_minutes": 50.0, "effective_calls": 40.0, "follow_ups": 12.5}
    store.override("1001", day, "follow_ups", 5, by="王经理", at=AT, reason="new list")
    assert adjusted_targets(BASE, store.for_day("1001", day), 9.0, [])["follow_ups"] == 5
    store.leave("1002", day, by="HR", at=AT, reason="annual leave")
    assert adjusted_targets(BASE, store.for_day("1002", day), 9.0, []) == {}


def test_revoking_restores_targets_and_keeps_the_audit_trail() -> None:
    store = Adjustments()
    leave = store.leave("1001", AT.date(), by="HR", at=AT, reason="sick")
    store.revoke(leave.id, by="HR", at=AT, reason="came in after all")
    assert store.for_day("1001", AT.date()).leave is False
    assert [(a.kind, a.by, a.reason) for a in store.history] == [
        ("leave", "HR", "sick"),
        ("revoke", "HR", "came in after all"),
    ]
    with pytest.raises(PolicyError):
        store.revoke(leave.id, by="HR", at=AT, reason="twice")


def test_adjustments_need_an_author_and_a_reason() -> None:
    with pytest.raises(PolicyError, match="audit"):
        Adjustments().leave("1001", AT.date(), by="", at=AT, reason="x")
