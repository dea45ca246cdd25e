"""Follow-ups in the period reports, the leaderboard, the scorecard with pay, revenue import and
the work log, on the stored mixed capture (Monday 2026-11-23, Asia/Shanghai) with the claims of
tests/store/test_followups.py and the example policy. Expected values come from the truth file
and the tracker's own totals, worked through the policy by hand.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, inspect

from ctid.cli import main
from ctid.privacy import mask_number
from ctid.store.engine import make_engine
from ctid.store.migrate import current_revision, upgrade
from ctid.store.schema import violations
from tests.store.support import migrated, numbers_at, store_capture
from tests.store.test_followups import (
    BUSY_SEAT,
    LONG_IN,
    LONG_OUT,
    OTHER_SEAT,
    SEAT_OF,
    SHORT,
    claim_rows,
    e164,
    write_csv,
)
from tests.store.test_migration_0002 import downgrade
from tests.store.test_period_reports import CONFIG, tracker_totals
from tests.truth import load_truth

TRUTH = load_truth("mixed_busy_period")
OUT_SEAT, IN_SEAT, SHORT_SEAT = SEAT_OF[id(LONG_OUT)], SEAT_OF[id(LONG_IN)], SEAT_OF[id(SHORT)]
# Claims per seat (claimed, verified, A, B) from test_followups.CLAIMS: the long outbound
# call is A and verified, the long inbound one B and verified; the rest are falsified.
CLAIMED = {
    OUT_SEAT: (1, 1, 1, 0),
    IN_SEAT: (1, 1, 0, 1),
    SHORT_SEAT: (1, 0, 0, 0),
    BUSY_SEAT: (1, 0, 0, 0),
    OTHER_SEAT: (2, 0, 0, 0),
}
NOVEMBER_WORKDAYS = 21


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> str:
    with migrated(db_url) as engine:
        store_capture(engine, "mixed_busy_period", "pbx", numbers_at(tmp_path / "number.key"))
    path = tmp_path / "ctid.toml"
    key = json.dumps(str(tmp_path / "number.key"))
    path.write_text(
        CONFIG + f"[store]\nurl = {json.dumps(db_url)}\nnumber_key_file = {key}\n",
        encoding="utf-8",
    )
    claims = write_csv(tmp_path / "crm.csv", claim_rows())
    assert main(["followups", "import", str(claims), "--config", str(path)]) == 0
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def monthly(capsys: pytest.CaptureFixture[str], config: str, fmt: str = "json") -> str:
    argv = ("report", "monthly", "--config", config, "--date", "2026-11-30", "--format", fmt)
    return run(capsys, *argv)


def test_follow_ups_are_counted_verified_and_falsified_ones_fined(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(monthly(capsys, config))
    seats = {row["seat"]: row for row in document["seats"]}
    tracked = tracker_totals()
    for seat, row in seats.items():
        claimed, verified, a_class, b_class = CLAIMED.get(seat, (0, 0, 0, 0))
        assert row["follow_ups"] == {
            "claimed": claimed,
            "verified": verified,
            "falsified": claimed - verified,
            "a_class": a_class,
            "b_class": b_class,
            "fine": 50 * (claimed - verified),
        }
        # Standard seats: 120 calls a day; 1002 80 a day from the 16th (11 workdays).
        calls = 880 if seat == "1002" else 120 * NOVEMBER_WORKDAYS
        effective = tracked[seat].effective if seat in tracked else 0
        assert row["fine"] == 5 * (calls - effective) + 50 * (claimed - verified)
    # A verified follow-up counts for the follow_ups quota: 1 of 25 a day × 21 workdays.
    assert seats[OUT_SEAT]["attainment"]["follow_ups"] == pytest.approx(1 / 525, abs=1e-6)
    assert seats[SHORT_SEAT]["attainment"]["follow_ups"] == 0
    centre = document["centre"]
    assert centre["follow_ups"]["claimed"] == 6
    assert centre["follow_ups"]["verified"] == 2
    assert centre["actuals"]["follow_ups"] == 2
    table = monthly(capsys, config, "table")
    row = next(line.split() for line in table.splitlines() if line.split()[1:2] == [OTHER_SEAT])
    assert row[-2] == "0/2"


def test_the_monthly_report_ranks_the_top_three_by_effective_calls_and_attainment(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(monthly(capsys, config))
    boards = {(b["scope"], b["by"]): b["top"] for b in document["leaderboards"]}
    effective = {seat: t.effective for seat, t in tracker_totals().items() if t.effective}
    ordered = sorted(effective.items(), key=lambda item: (-item[1], item[0]))
    third = ordered[2][1]
    expected = [seat for seat, count in ordered if count >= third]  # ties with 3rd included
    assert [p["seat"] for p in boards[("centre", "effective_calls")]] == expected
    assert boards[("centre", "effective_calls")][0]["value"] == ordered[0][1]
    # Attainment of effective calls: the count over 120 × 21 (1002: over 880).
    targets = {seat: 880 if seat == "1002" else 2520 for seat in effective}
    by_attainment = sorted(effective, key=lambda s: (-effective[s] / targets[s], s))
    top = [p["seat"] for p in boards[("centre", "attainment")]]
    assert top == by_attainment[: len(top)]
    assert len(top) >= 3
    team_a = [p["team"] for p in boards[("team-a", "effective_calls")]]
    assert set(team_a) == {"team-a"}
    weekly = ("report", "weekly", "--config", config, "--date", "2026-11-25", "--format", "json")
    assert json.loads(run(capsys, *weekly))["leaderboards"] == []


def test_scorecard_points_bands_and_pay_estimate(
    config: str, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(violations),
                [
                    {
                        "fingerprint": f"f{n}",
                        "seat": OTHER_SEAT,
                        "rule": rule,
                        "severity": "warn",
                        "at": dt.datetime(2026, 11, 23, 3, n, tzinfo=dt.UTC),
                        "detail": {},
                    }
                    for n, rule in enumerate(["do_not_call", "frequency", "overlong"])
                ],
            )
    finally:
        engine.dispose()
    revenue = tmp_path / "revenue.csv"
    revenue.write_text(
        "seat,month,date,amount\n"
        f"{OUT_SEAT},2026-11,,1000\n{OUT_SEAT},,2026-11-23,300.50\n"
        f"{OUT_SEAT},,2026-11-23,199.50\n{OUT_SEAT},,2026-12-01,999\n",
        encoding="utf-8",
    )
    out = run(capsys, "revenue", "import", str(revenue), "--config", config)
    assert out.strip() == f"{revenue}: 3 revenue amounts stored for 1 seats"
    argv = ("report", "scorecard", "--config", config, "--date", "2026-11-30", "--format", "json")
    seats = {row["seat"]: row for row in json.loads(run(capsys, *argv))["seats"]}
    effective = tracker_totals()[OUT_SEAT].effective
    out_seat = seats[OUT_SEAT]
    # Far below 100 % of the calls quota on every one of the 21 workdays: -2 each.
    assert out_seat["points"]["total"] == 100 - 2 * NOVEMBER_WORKDAYS
    assert out_seat["band"] == "deduction"
    # 1000 + 0.5 × effective + 100 × one A customer + 1 % of 1000 + 300.50 + 199.50.
    assert out_seat["pay"]["revenue"] == 1500
    assert out_seat["pay"]["estimate"] == pytest.approx(1000 + 0.5 * effective + 100 + 15)
    other = seats[OTHER_SEAT]
    # do_not_call -10, frequency -2, overlong not priced; 2 falsified × -5.
    assert other["violations"] == {"do_not_call": 1, "frequency": 1, "overlong": 1}
    assert other["points"]["violations"] == -12
    assert other["points"]["total"] == 100 - 42 - 12 - 10
    assert seats[IN_SEAT]["pay"]["b_class"] == 1
    table = run(capsys, *argv[:-1], "table")
    assert "bands: bonus above 120, deduction below 80" in table


def test_a_bad_revenue_row_names_line_and_column_and_stores_nothing(
    config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    revenue = tmp_path / "revenue.csv"
    revenue.write_text("seat,date,amount\n1001,2026-11-23,10\n1001,23/11/2026,5\n", "utf-8")
    capsys.readouterr()
    assert main(["revenue", "import", str(revenue), "--config", config]) == 2
    assert f"{revenue}:3: column 2 (date): " in capsys.readouterr().err
    argv = ("report", "scorecard", "--config", config, "--date", "2026-11-30", "--format", "json")
    seats = {row["seat"]: row for row in json.loads(run(capsys, *argv))["seats"]}
    assert seats["1001"]["pay"]["revenue"] == 0


def _seat_calls(seat: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    pairs = zip(TRUTH["calls"], TRUTH["expected"]["per_call"], strict=True)
    mine = [
        (lab, call)
        for lab, call in pairs
        if lab["seat"] == seat or any(s["seat"] == seat for s in call["segments"])
    ]
    return sorted(mine, key=lambda pair: pair[0]["t_start"])


def test_worklog_lists_the_seats_calls_in_order_masked_with_its_follow_ups(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("report", "worklog", "--config", config, "--date", "2026-11-23", "--seat", OUT_SEAT)
    (seat,) = json.loads(run(capsys, *argv, "--format", "json"))["seats"]
    expected = _seat_calls(OUT_SEAT)
    assert len(seat["calls"]) == len(expected)
    for got, (lab, call) in zip(seat["calls"], expected, strict=True):
        talk = sum(s["talk_seconds"] for s in call["segments"] if s["seat"] == OUT_SEAT)
        assert got["number"] == mask_number(call["number"])
        assert got["direction"] == call["direction"]
        assert got["talk_seconds"] == pytest.approx(talk, abs=0.01)
        assert got["effective"] == (talk >= 30)
        start = dt.datetime.fromisoformat(got["time"]).timestamp()
        assert start == pytest.approx(lab["t_start"], abs=1.0)
    talked = {
        call["number"]
        for _, call in expected
        if any(s["seat"] == OUT_SEAT for s in call["segments"])
    }
    assert seat["customers_reached"] == len(talked)
    (claim,) = seat["follow_ups"]
    assert claim == {
        "time": claim["time"],
        "number": mask_number(e164(LONG_OUT["number"])),
        "class": "A",
        "verified": True,
        "reason": None,
    }
    every = (
        run(capsys, "report", "worklog", "--config", config, "--date", "2026-11-23")
        + run(capsys, *argv, "--format", "csv")
        + run(capsys, *argv, "--format", "html")
    )
    for _, call in _seat_calls(OUT_SEAT):
        assert call["number"] not in every
    assert "call too short" in run(capsys, *argv[:-1], SHORT_SEAT)


def test_0004_adds_the_revenue_table_and_its_downgrade_removes_it(db_url: str) -> None:
    upgrade(db_url, "0003")
    engine = make_engine(db_url)
    try:
        assert "revenue" not in inspect(engine).get_table_names()
        upgrade(db_url, "0004")
        assert current_revision(engine) == "0004"
        assert "revenue" in inspect(engine).get_table_names()
        downgrade(engine, "0003")
        assert current_revision(engine) == "0003"
        assert "revenue" not in inspect(engine).get_table_names()
        assert "follow_ups" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
