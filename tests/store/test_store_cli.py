"""``ctid db upgrade``, ``ctid reconcile`` and ``ctid report``, through ctid's own entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctid.cli import main
from ctid.replay import replay_streams
from ctid.store.engine import make_engine
from tests.store.support import count
from tests.truth import CAPTURES, capture_files, capture_streams

RECONCILED = [
    "inbound_queue_answered",
    "blind_transfer",
    "hold_mid_call",
    "click_to_call_originate",
]
MIXED = str(CAPTURES / "mixed_busy_period.ami.gz")
NAMES = {"1001": "张伟", "1002": "李娜", "1003": "王芳", "1006": "Carol White"}
CONFIG = '[site]\ntimezone = "Asia/Shanghai"\n' + "".join(
    f'[[seats]]\nid = "{seat}"\nname = "{NAMES.get(seat, "")}"\n'
    f'team = "{"north" if seat <= "1005" else "south"}"\n'
    for seat in (f"{n}" for n in range(1001, 1011))
)


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "ctid.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return str(path)


def files(*names: str) -> list[str]:
    return [str(CAPTURES / f"{name}.ami.gz") for name in names]


@pytest.mark.parametrize("command", [["db", "upgrade"], ["reconcile"], ["report", "daily"]])
def test_each_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert "--config" in out
    assert "--db" in out


def test_db_upgrade_reports_the_revision(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--db", sqlite_url]) == 0
    assert main(["db", "upgrade", "--db", sqlite_url]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("schema at revision 0006")


def test_reconcile_table_names_each_call_and_why_billsec_differs(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reconcile", "--db", sqlite_url, *files(*RECONCILED)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == [
        "linkedid", "seat", "talk", "hold", "ring", "billsec", "expect", "raw", "drift",
        "status", "reasons",
    ]  # fmt: skip
    statuses = sorted(line.split()[-2:][0] + " " + line.split()[-1] for line in lines[2:])
    assert statuses == ["explained hold"] + ["explained ring"] * 3
    assert "4 calls (4 explained); 0 flagged" in captured.err


def test_reconcile_json_and_idempotent_storage(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["reconcile", "--db", sqlite_url, "--format", "json", MIXED]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    engine = make_engine(sqlite_url)
    try:
        stored = count(engine, "calls"), count(engine, "cdrs")
        assert main(argv) == 0
        assert (count(engine, "calls"), count(engine, "cdrs")) == stored
    finally:
        engine.dispose()
    assert json.loads(capsys.readouterr().out) == first
    assert first["summary"]["calls"] == 95
    assert first["summary"]["flagged"] == 0
    assert set(first["summary"]["statuses"]) <= {"match", "explained", "no_talk"}
    call = first["calls"][0]
    assert {"linkedid", "billsec", "expected_billsec", "raw_drift", "drift", "status"} <= set(call)
    assert "remote" not in call


def test_reconcile_a_stored_day(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    parts = [str(p) for p in capture_files("pbx_crash_mid_call")]
    assert main(["reconcile", "--db", sqlite_url, *parts]) == 0
    capsys.readouterr()
    argv = ["reconcile", "--db", sqlite_url, "--date", "2026-11-23", "--format", "csv"]
    assert main(argv) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("linkedid,seat,talk_seconds")
    assert [r.split(",")[-2:] for r in rows[1:]] == [["no_cdr", "interrupted"], ["match", ""]]


def test_report_daily_table_ranks_seats_with_names_and_teams(
    sqlite_url: str, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reconcile", "--db", sqlite_url, "--config", config, MIXED]) == 0
    capsys.readouterr()
    argv = ["report", "daily", "--db", sqlite_url, "--config", config, "--date", "2026-11-23"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "daily 2026-11-23"
    assert lines[1].split()[:4] == ["#", "seat", "name", "team"]
    body = [line.split() for line in lines[3:]]
    assert [row[0] for row in body] == [str(i) for i in range(1, 11)]
    assert ["1001", "张伟", "north"] in [row[1:4] for row in body]


def test_report_daily_json_equals_the_replayed_tallies(
    sqlite_url: str, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reconcile", "--db", sqlite_url, "--config", config, MIXED]) == 0
    capsys.readouterr()
    argv = ["report", "daily", "--db", sqlite_url, "--config", config, "--date", "2026-11-23"]
    assert main([*argv, "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["completeness"] == {"pbx": 1.0}
    assert document["period"] == {
        "kind": "daily",
        "first": "2026-11-23",
        "last": "2026-11-23",
        "through": "2026-11-23",
        "timezone": "Asia/Shanghai",
    }
    replay = replay_streams(capture_streams("mixed_busy_period"))
    assert replay.tallies is not None
    want = replay.tallies.totals()
    seats = {row["seat"]: row for row in document["seats"]}
    for seat, tally in want.items():
        assert seats[seat]["effective"] == tally.effective
        assert seats[seat]["talk_seconds"] == pytest.approx(tally.talk_seconds, abs=0.001)
        assert seats[seat]["attainment"] is None
    talk = [row["talk_seconds"] for row in document["seats"]]
    assert talk == sorted(talk, reverse=True)


def test_report_for_one_team(
    sqlite_url: str, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reconcile", "--db", sqlite_url, "--config", config, MIXED]) == 0
    capsys.readouterr()
    argv = ["report", "weekly", "--db", sqlite_url, "--config", config, "--date", "2026-11-25"]
    assert main([*argv, "--team", "north", "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("rank,seat,name,team,calls,answered,effective,talk_minutes")
    assert sorted(r.split(",")[1] for r in rows[1:]) == ["1001", "1002", "1003", "1004", "1005"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "daily", "--date", "23/11/2026"], "--date '23/11/2026': not a date"),
        (["report", "daily", "--team", "west"], "--team 'west': no such team"),
        (["report", "daily", "--db", "sqlite:////nonexistent/ctid.db"], "no database at"),
        (["reconcile", "/nonexistent/x.ami"], "cannot read"),
    ],
)
def test_user_mistakes_are_one_clear_line(
    argv: list[str], message: str, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--db", sqlite_url]) == 0
    capsys.readouterr()
    if "--db" not in argv:
        argv = [*argv, "--db", sqlite_url]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("ctid: error: ")
    assert message in err
