"""The soak's tooling (``make soak``): a short soak on a small floor accounts for every call.

Real processes (``ctid simulate`` and ``ctid run``), real TCP and a real SQLite store, sped up
so it takes seconds.  Nothing here asserts on time: a busy machine slows a soak, it must not
change what the soak counts.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bench.soak.check import account, read_store
from bench.soak.cli import main
from bench.soak.figures import (
    bucket_difference,
    histogram_max_bound,
    histogram_quantile,
    least_squares,
)
from tests.truth import call_mismatches, seat_mismatches

# 60 seats, each calling every ~15 s of PBX time, for 30 PBX seconds at 6x: ~100 calls.
SMALL_FLOOR = [
    "--minutes",
    "0.5",
    "--seats",
    "60",
    "--calls-per-seat-hour",
    "240",
    "--extra-talk",
    "0-10",
    "--speed",
    "6",
    "--sample-seconds",
    "1",
    "--seed",
    "7",
]


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("soak")
    results = workdir / "soak.json"
    code = main([*SMALL_FLOOR, "--workdir", str(workdir), "--results", str(results)])
    figures: dict[str, Any] = json.loads(results.read_text("utf-8"))["soak"]
    return code, workdir, figures


def _truth(workdir: Path) -> dict[str, Any]:
    truth: dict[str, Any] = json.loads((workdir / "truth.json").read_text("utf-8"))
    return truth


def test_a_short_soak_stores_every_generated_call(soak: tuple[int, Path, dict[str, Any]]) -> None:
    code, _, figures = soak
    accounting, store = figures["accounting"], figures["store"]
    assert code == 0
    assert accounting["problems"] == []
    assert accounting["calls_stored"] == accounting["calls_generated"] >= 60
    stored, generated = accounting["talk_seconds_stored"], accounting["talk_seconds_generated"]
    assert generated > 500
    assert stored == pytest.approx(generated, abs=0.01)
    assert store["rows_dropped"] == store["rows_rejected"] == store["rows_left_in_spool"] == 0
    assert store["table_rows"]["calls"] == accounting["calls_generated"]
    # The daemon read the whole stream (plus its own action responses), and was sampled.
    assert figures["frames_read"] >= figures["planned"]["frames"]
    assert len(figures["series"]["rss_kib"]) >= 3
    assert all(rss > 10_000 for rss in figures["series"]["rss_kib"])


def test_the_soak_check_agrees_with_the_rules_of_the_simulate_tests(
    soak: tuple[int, Path, dict[str, Any]],
) -> None:
    _, workdir, _ = soak
    truth = _truth(workdir)
    stored = read_store(workdir / "store" / "ctid.db")
    assert call_mismatches(truth, stored.calls, numbers_masked=True) == []
    assert seat_mismatches(truth, stored.seats) == []
    # ... on a floor that has the hard cases: holds, queue calls, several seats on one call.
    assert sum(t.hold_seconds for t in stored.seats.values()) > 0
    assert {str(c.direction) for c in stored.calls} == {"inbound", "outbound"}
    assert any(len({s.seat for s in c.segments.values()}) > 1 for c in stored.calls)


def test_the_check_finds_a_lost_call_and_a_talk_difference(
    soak: tuple[int, Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, workdir, _ = soak
    database = tmp_path / "ctid.db"
    shutil.copyfile(workdir / "store" / "ctid.db", database)
    with sqlite3.connect(database) as db:
        talked = db.execute(
            "SELECT rowid, linkedid, seat, talk_intervals FROM call_segments"
            " WHERE talk_seconds > 1 ORDER BY linkedid"
        ).fetchall()
        lost, (row, changed, seat, intervals) = talked[0][1], talked[-1]
        db.execute("DELETE FROM call_segments WHERE linkedid = ?", (lost,))
        db.execute("DELETE FROM calls WHERE linkedid = ?", (lost,))
        # 0.02 s more talk on one segment: its column and (for the seat's total) its intervals.
        longer = json.loads(intervals)
        longer[-1][1] += 0.02
        db.execute(
            "UPDATE call_segments SET talk_seconds = talk_seconds + 0.02, talk_intervals = ?"
            " WHERE rowid = ?",
            (json.dumps(longer), row),
        )
    db.close()
    accounting = account(_truth(workdir), read_store(database))
    assert not accounting.matches
    assert accounting.calls_stored == accounting.calls_generated - 1
    assert f"{lost}: not stored" in accounting.problems
    assert any(p.startswith(f"{changed}: seat {seat} talk/hold") for p in accounting.problems)
    assert any(p.startswith(f"seat {seat} talk_seconds") for p in accounting.problems)


def test_a_floor_the_simulator_refuses_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--seats", "0", "--workdir", str(tmp_path), "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == ["soak: error: --seats must be between 1 and 10000, not 0"]
    assert not (tmp_path / "r").exists()


# --- the figures -----------------------------------------------------------------------------


def test_rss_slope_is_least_squares_with_its_standard_error() -> None:
    line = least_squares([(x, 5 + 3 * x) for x in (0.0, 1.0, 2.0, 3.0)])
    assert line is not None
    assert line.per_minute == pytest.approx(3.0)
    assert line.stderr == pytest.approx(0.0)
    noisy = least_squares([(0.0, 0.0), (1.0, 2.0), (2.0, 0.0), (3.0, 2.0)])
    assert noisy is not None
    assert noisy.per_minute == pytest.approx(0.4)
    assert noisy.stderr > 0
    assert least_squares([(0.0, 1.0), (1.0, 2.0)]) is None


def test_lag_quantiles_interpolate_inside_buckets_like_promql() -> None:
    inf = float("inf")
    start = ((0.001, 10.0), (0.005, 10.0), (0.01, 10.0), (inf, 10.0))
    later = ((0.001, 60.0), (0.005, 100.0), (0.01, 109.0), (inf, 110.0))
    window = bucket_difference(later, start)  # 50 under 1 ms, 40 more under 5 ms, 9, then 1
    assert window == ((0.001, 50.0), (0.005, 90.0), (0.01, 99.0), (inf, 100.0))
    assert histogram_quantile(0.5, window) == pytest.approx(0.001)
    assert histogram_quantile(0.7, window) == pytest.approx(0.001 + 0.004 * 20 / 40)
    assert histogram_quantile(0.99, window) == pytest.approx(0.01)
    assert histogram_quantile(0.999, window) == pytest.approx(0.01)  # in +Inf: last bound
    assert histogram_max_bound(window) == inf
    assert histogram_max_bound(window[:3]) == 0.01
    assert histogram_quantile(0.5, ((0.001, 0.0), (inf, 0.0))) is None
