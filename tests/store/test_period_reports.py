"""``ctid report dekad|weekly|monthly`` with the example policy, on a replayed capture.

The mixed capture (Monday 2026-11-23, Asia/Shanghai) is stored, then reported on; the expected
attainment is the tracker's own talk time over targets worked out by hand from
examples/policy.toml: 1001 standard (100 min), 1002 hired 2026-11-16 (first half-month to
2026-11-30, 120 min, 80 calls), 1003 new staff (120 min, 120 calls), every other seat standard;
the robot 9001 in a list of its own.
"""

from __future__ import annotations

import datetime as dt
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from ctid.cli import main
from ctid.policy.adjustments import Adjustments
from ctid.replay import replay_streams
from ctid.store.adjustments import adjustment_row
from ctid.store.upsert import write_rows
from tests.store.support import migrated, store_capture
from tests.truth import capture_streams

EXAMPLE_POLICY = Path(__file__).parent.parent.parent / "examples" / "policy.toml"
NAMES = {"1001": "张伟", "1002": "李娜", "1003": "王芳", "1006": 'Carol "CJ" <White> & Co'}
SEATS = [str(n) for n in range(1001, 1011)]
TEAM_A = {"1001", "1002", "1004", "1005", "1006"}
CONFIG = (
    f'[site]\ntimezone = "Asia/Shanghai"\n[policy]\nfile = {json.dumps(str(EXAMPLE_POLICY))}\n'
    + "".join(
        f"[[seats]]\nid = {json.dumps(seat)}\nname = {json.dumps(NAMES.get(seat, ''))}\n"
        f'team = "{"team-a" if seat in TEAM_A else "team-b"}"\n'
        for seat in SEATS
    )
)
# Talk-minute targets (a day's quota × the workdays counted) and effective-call targets.
PERIODS = {
    # 21-30 Nov through the 30th: 23-27 and 30 Nov are 6 workdays.
    "dekad": ("2026-11-30", 6, {"1001": 600, "1002": 720, "1003": 720}, {"1002": 480}),
    # 23-29 Nov: 5 workdays.
    "weekly": ("2026-11-29", 5, {"1001": 500, "1002": 600, "1003": 600}, {"1002": 400}),
    # November: 21 workdays; 1002 only from its hire date on the 16th (11 of them).
    "monthly": ("2026-11-30", 21, {"1001": 2100, "1002": 1320, "1003": 2520}, {"1002": 880}),
}


@pytest.fixture
def stored(db_url: str) -> str:
    with migrated(db_url) as engine:
        store_capture(engine, "mixed_busy_period", pbx="pbx")
    return db_url


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "ctid.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return str(path)


def tracker_totals() -> dict[str, Any]:
    replay = replay_streams(capture_streams("mixed_busy_period"))
    assert replay.tallies is not None
    return replay.tallies.totals()


def report(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["report", *argv]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("kind", list(PERIODS))
def test_attainment_is_the_trackers_talk_over_the_summed_day_targets(
    kind: str, stored: str, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    date, workdays, talk_targets, call_targets = PERIODS[kind]
    argv = [kind, "--db", stored, "--config", config, "--date", date, "--format", "json"]
    document = json.loads(report(capsys, *argv))
    assert document["policy"] == {"version": "2026-11", "currency": "CNY"}
    seats = {row["seat"]: row for row in document["seats"]}
    assert sorted(seats) == SEATS
    assert [row["seat"] for row in document["robots"]] == ["9001"]
    tracked = tracker_totals()
    assert set(tracked) <= set(SEATS)
    for seat in SEATS:
        target = talk_targets.get(seat, 100 * workdays)
        talk = tracked[seat].talk_seconds if seat in tracked else 0.0
        row = seats[seat]
        assert row["targets"]["talk_minutes"] == target
        assert row["attainment"]["talk_minutes"] == pytest.approx(talk / 60 / target, abs=1e-6)
        # Nobody reaches a day's 120 (or 80) calls: every call short is fined 5 yuan, once.
        calls = call_targets.get(seat, 120 * workdays)
        effective = tracked[seat].effective if seat in tracked else 0
        assert row["fine"] == 5 * (calls - effective)
    robot = document["robots"][0]
    assert robot["targets"]["dials"] == 2000 * workdays
    centre = document["centre"]
    assert centre["seats"] == 10  # the robot is left out
    human_talk = sum(t.talk_seconds for t in tracked.values()) / 60
    assert centre["actuals"]["talk_minutes"] == pytest.approx(human_talk, abs=0.01)
    assert centre["targets"]["talk_minutes"] == sum(
        talk_targets.get(seat, 100 * workdays) for seat in SEATS
    )
    teams = {team["name"]: team for team in document["teams"]}
    assert teams["team-b"]["targets"]["effective_calls"] == 500 * workdays  # the team's own
    assert teams["team-a"]["leader"] == "王经理"
    assert centre["fine"] == pytest.approx(sum(row["fine"] for row in seats.values()))


class _Cells(HTMLParser):
    """Text of every table cell, and any tag that would load something or run a script."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.fetching: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_cell = tag in {"td", "th"}
        if self._in_cell:
            self.cells.append("")
        if tag in {"script", "link", "img", "iframe"} or any(
            k in {"src", "href"} for k, _ in attrs
        ):
            self.fetching.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"}:
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells[-1] += data


def test_html_is_one_page_with_every_seat_and_the_totals(
    stored: str, config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dekad.html"
    argv = ["dekad", "--db", stored, "--config", config, "--date", "2026-11-30"]
    assert report(capsys, *argv, "--format", "html", "--output", str(out)) == ""
    page = out.read_text(encoding="utf-8")
    parser = _Cells()
    parser.feed(page)
    parser.close()
    assert parser.fetching == []
    cells = parser.cells
    for seat in [*SEATS, "9001"]:
        assert seat in cells
    for name in NAMES.values():
        assert name in cells
    assert "<White>" not in page  # escaped, not markup
    assert {"team-a", "team-b", "centre"} <= set(cells)
    document = json.loads(report(capsys, *argv, "--format", "json"))
    centre = document["centre"]
    assert f"{centre['targets']['talk_minutes']:.1f}".removesuffix(".0") in cells
    assert f"{centre['fine']:.0f}" in cells


def test_output_writes_the_same_document_as_stdout(
    stored: str, config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["weekly", "--db", stored, "--config", config, "--date", "2026-11-25"]
    for fmt in ("json", "csv", "table"):
        printed = report(capsys, *argv, "--format", fmt)
        out = tmp_path / f"report.{fmt}"
        assert report(capsys, *argv, "--format", fmt, "--output", str(out)) == ""
        assert out.read_text(encoding="utf-8") == printed


def test_table_shows_attainment_fines_and_team_totals(
    stored: str, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["weekly", "--db", stored, "--config", config, "--date", "2026-11-25"]
    lines = report(capsys, *argv).splitlines()
    assert lines[0] == (
        "weekly 2026-11-23 .. 2026-11-29, through 2026-11-25 (policy 2026-11, fines in CNY)"
    )
    # Follow-ups are counted from the CRM's verified claims (none stored here: 0 %).
    header = ["dials", "talk%", "eff%", "fax%", "f-up%", "claims", "fine"]
    assert lines[1].split()[-7:] == header
    assert "robots" in lines
    totals = lines.index("team totals (human seats): actual/target attainment")
    rollups = [line.split()[0] for line in lines[totals + 3 :]]
    assert rollups == ["team-a", "team-b", "centre", "claims:"]
    # 1003 (new staff) over three workdays: 360 calls targeted, all but its effective ones
    # missing, 5 yuan each; its make-up Sunday is after the 25th.
    effective = tracker_totals()["1003"].effective
    body = [line.split() for line in lines[3 : lines.index("")]]
    assert len(body) == 10
    row = next(cells for cells in body if cells[1] == "1003")
    assert row[-1] == str(5 * (360 - effective))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--policy", "/nonexistent/policy.toml"], "cannot read"),
        (["--output", "/nonexistent/dir/report.html"], "--output /nonexistent/dir/report.html"),
    ],
)
def test_report_mistakes_are_one_clear_line(
    extra: list[str],
    message: str,
    sqlite_url: str,
    config: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with migrated(sqlite_url):
        pass
    argv = ["report", "dekad", "--db", sqlite_url, "--config", config, *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("ctid: error: ")
    assert message in err


def test_an_invalid_policy_file_is_one_line_naming_the_key(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text(
        EXAMPLE_POLICY.read_text(encoding="utf-8").replace("Asia/Shanghai", "Asia/Shanghi"),
        encoding="utf-8",
    )
    with migrated(sqlite_url):
        pass
    assert main(["report", "monthly", "--db", sqlite_url, "--policy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "sites.shanghai.timezone" in err


def test_stored_adjustments_reduce_the_period_targets(
    stored: str, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Leave on a day removes its targets; a revoked leave removes nothing; a 3 h field visit
    cuts that day's call quota to (9 - 3) / 9 of 120 = 80, the talk quota stays."""
    at = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    book = Adjustments()
    book.leave("1001", dt.date(2026, 11, 24), by="lead", at=at, reason="sick")
    revoked = book.leave("1005", dt.date(2026, 11, 24), by="lead", at=at, reason="typo")
    book.revoke(revoked.id, by="lead", at=at, reason="entered for the wrong seat")
    book.field_visit("1004", dt.date(2026, 11, 25), 3.0, by="lead", at=at, reason="client")
    engine = create_engine(stored)
    try:
        write_rows(engine, [adjustment_row(item) for item in book.history])
    finally:
        engine.dispose()
    argv = ["weekly", "--db", stored, "--config", config, "--date", "2026-11-29"]
    seats = {
        row["seat"]: row for row in json.loads(report(capsys, *argv, "--format", "json"))["seats"]
    }
    # 23-29 Nov: 5 workdays of 100 min / 120 calls for standard seats (see PERIODS).
    assert seats["1001"]["targets"]["talk_minutes"] == 400
    assert seats["1001"]["targets"]["effective_calls"] == 480
    assert seats["1005"]["targets"]["talk_minutes"] == 500
    assert seats["1004"]["targets"]["talk_minutes"] == 500
    assert seats["1004"]["targets"]["effective_calls"] == 4 * 120 + 80
