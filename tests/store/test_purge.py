"""``ctid purge`` and ``[store] retention_days`` on SQLite and PostgreSQL.

The mixed capture (2026-11-23) is stored three times under distinct PBX names: ``new`` as
recorded, ``old`` 60 days earlier (all of it before the cut-off), and ``edge`` shifted so the
cut-off midnight (2026-10-01, Asia/Shanghai) falls in the middle of its longest call.  Small
captures add internal talk, an internal call and an AMI gap on both sides; violations, quota
adjustments and a policy version are written directly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from structlog.testing import capture_logs

from ctid.cli import main
from ctid.config import Settings
from ctid.errors import InputError
from ctid.policy.adjustments import Adjustment
from ctid.store import purge as purge_module
from ctid.store.adjustments import adjustment_row
from ctid.store.capture import capture_rows
from ctid.store.engine import make_engine
from ctid.store.purge import (
    Cutoff,
    check_cutoff,
    plan,
    protected_since,
    purge,
    purge_daily,
    retention_cutoff,
    row_counts,
)
from ctid.store.queries import rebuild_day
from ctid.store.rows import StoreRow
from ctid.store.schema import UtcTimestamp, metadata, quota_adjustments
from ctid.store.upsert import write_rows
from tests.store.support import TEST_NUMBERS, count, migrated, store_capture
from tests.test_daemon import running
from tests.truth import CAPTURES, capture_streams

TZ = ZoneInfo("Asia/Shanghai")
CUTOFF = Cutoff.of(dt.date(2026, 10, 1), TZ)  # 2026-09-30 16:00 UTC
DAY_S = 86_400.0
OLD_SHIFT = -60 * DAY_S
SMALL = ("internal_call", "pbx_restart_mid_call")
"""Internal talk, an internal call (internal_call); two connections, so a gap (restart)."""
TABLES = (
    "calls",
    "call_segments",
    "internal_talk",
    "internal_calls",
    "cdrs",
    "gaps",
    "violations",
    "quota_adjustments",
)


def shifted(row: StoreRow, seconds: float) -> StoreRow:
    """The row ``seconds`` later: every instant column, and a segment's intervals."""
    table = metadata.tables[row.table]
    values = dict(row.values)
    for column in table.columns:
        value = values.get(column.name)
        if isinstance(column.type, UtcTimestamp) and isinstance(value, int | float):
            values[column.name] = value + seconds
    for name in ("talk_intervals", "hold_intervals"):
        if name in values:
            values[name] = [[a + seconds, b + seconds] for a, b in values[name]]
    return StoreRow(row.table, values)


def capture_units(name: str, pbx: str, seconds: float) -> list[StoreRow]:
    return [shifted(row, seconds) for row in _capture(name, pbx)]


@functools.cache
def _capture(name: str, pbx: str) -> tuple[StoreRow, ...]:
    # Replaying is the slow part of every test here; shifting copies the values.
    capture = capture_rows(capture_streams(name), pbx=pbx)
    return tuple(row for unit in capture.units for row in unit)


def edge_shift() -> float:
    """Puts the cut-off instant in the middle of the mixed capture's longest call."""
    rows = capture_units("mixed_busy_period", "edge", 0.0)
    longest = max(
        (r.values for r in rows if r.table == "calls"),
        key=lambda v: v["ended_at"] - v["started_at"],
    )
    middle = (longest["started_at"] + longest["ended_at"]) / 2
    return CUTOFF.at.timestamp() - middle


def expected_deletions(rows: list[StoreRow], cutoff: float) -> dict[str, int]:
    """The documented rule, applied in Python to the rows as written."""
    by_table: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_table.setdefault(row.table, []).append(row.values)
    call_rows = by_table.get("calls", [])
    gone = {(c["pbx"], c["linkedid"]) for c in call_rows if c["ended_at"] < cutoff}
    kept = {(c["pbx"], c["linkedid"]) for c in call_rows} - gone
    segments = by_table.get("call_segments", [])
    return {
        "calls": len(gone),
        "call_segments": sum((s["pbx"], s["linkedid"]) in gone for s in segments),
        "internal_talk": sum(t["ended_at"] < cutoff for t in by_table.get("internal_talk", [])),
        "internal_calls": sum(c["placed_at"] < cutoff for c in by_table.get("internal_calls", [])),
        "cdrs": sum(
            c["posted_at"] < cutoff and (c["pbx"], c["linkedid"]) not in kept
            for c in by_table.get("cdrs", [])
        ),
        "gaps": sum(g["ended_at"] <= cutoff for g in by_table.get("gaps", [])),
    }


def violation(key: str, at: float) -> StoreRow:
    values = {
        "fingerprint": key * 64,
        "pbx": "new",
        "linkedid": f"v-{key}",
        "seat": "1001",
        "rule": "calling_hours",
        "severity": "observe",
        "at": at,
        "detail": {"team": "sales", "number": "******1002"},
    }
    return StoreRow("violations", values)


def adjustment(id_: int, day: str, kind: Any = "leave", revokes: int | None = None) -> StoreRow:
    at = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    entry = Adjustment(id_, "1001", dt.date.fromisoformat(day), kind, "lead", at, "test")
    if revokes is not None:
        entry = Adjustment(id_, "1001", entry.day, "revoke", "lead", at, "", revokes=revokes)
    return adjustment_row(entry)


# Kept: 3 (a kept revocation names it), 4 and 5 (kept days), 6 (the newest id, whatever its
# day); deleted: 1 and its revocation 2.
ADJUSTMENTS = [
    adjustment(1, "2026-09-20"),
    adjustment(2, "2026-09-20", revokes=1),
    adjustment(3, "2026-09-29"),
    adjustment(4, "2026-10-01", revokes=3),
    adjustment(5, "2026-11-23"),
    adjustment(6, "2026-09-02"),
]
VIOLATIONS = [
    violation("a", CUTOFF.at.timestamp() - 10 * DAY_S),
    violation("b", CUTOFF.at.timestamp() - 1),
    violation("c", CUTOFF.at.timestamp()),  # at the cut-off: a kept day's
    violation("d", CUTOFF.at.timestamp() + 50 * DAY_S),
]
POLICY = StoreRow(
    "policy_versions",
    {"name": "v1", "digest": "f" * 64, "activated_at": 1_700_000_000.0, "document": "x"},
)


@dataclass
class Stored:
    url: str
    expected: dict[str, int]
    """Rows a purge at :data:`CUTOFF` deletes, per table."""
    totals: dict[str, int]


def store_dataset(engine: Engine) -> dict[str, int]:
    """Write the data set; the deletions expected at :data:`CUTOFF`."""
    store_capture(engine, "mixed_busy_period", pbx="new")
    rows = capture_units("mixed_busy_period", "old", OLD_SHIFT)
    rows += capture_units("mixed_busy_period", "edge", edge_shift())
    for name in SMALL:
        store_capture(engine, name, pbx=f"{name}-new")
        rows += capture_units(name, f"{name}-old", OLD_SHIFT)
    write_rows(engine, [*rows, *VIOLATIONS, *ADJUSTMENTS, POLICY], TEST_NUMBERS.protector())
    expected = expected_deletions(rows, CUTOFF.at.timestamp())
    return expected | {"violations": 2, "quota_adjustments": 2}


@pytest.fixture
def stored(db_url: str) -> Stored:
    with migrated(db_url) as engine:
        expected = store_dataset(engine)
        totals = {name: count(engine, name) for name in (*TABLES, "policy_versions")}
    return Stored(db_url, expected, totals)


def test_the_data_set_has_rows_on_both_sides_and_a_call_across_the_cut_off(
    stored: Stored,
) -> None:
    # The old copy is gone whole: the capture's 95 calls, 91 segments and 163 CDRs, plus the
    # small captures' rows; the edge copy adds part of its calls.
    assert 95 < stored.expected["calls"] < 2 * 95
    assert stored.expected["internal_talk"] == 2
    assert stored.expected["internal_calls"] == 1
    assert stored.expected["gaps"] == 1
    for table in TABLES:
        assert 0 < stored.expected[table] < stored.totals[table], table
    engine = make_engine(stored.url)
    try:
        calls = metadata.tables["calls"]
        with engine.connect() as connection:
            across = connection.execute(
                select(calls.c.linkedid).where(
                    calls.c.pbx == "edge",
                    calls.c.started_at < CUTOFF.at,
                    calls.c.ended_at >= CUTOFF.at,
                )
            ).all()
    finally:
        engine.dispose()
    assert across  # a call that ran past the cut-off midnight: it must be kept


def test_purge_deletes_exactly_the_days_before_the_cut_off(stored: Stored) -> None:
    with migrated(stored.url) as engine:
        planned = plan(engine, CUTOFF)
        # Tables the data set leaves empty (follow-ups, ...) have nothing to delete.
        assert planned == stored.expected | dict.fromkeys(set(planned) - set(TABLES), 0)
        deleted = purge(engine, CUTOFF)
        kept = row_counts(engine)
        # Again: nothing left to delete.
        assert set(purge(engine, CUTOFF).values()) == {0}
    assert {name: deleted[name] for name in TABLES} == stored.expected
    for table in TABLES:
        assert kept[table] == stored.totals[table] - stored.expected[table], table
    assert kept["policy_versions"] == 1
    adjustments = [row["id"] for row in _rows(stored.url, quota_adjustments)]
    assert adjustments == [3, 4, 5, 6]


def test_dry_run_counts_and_changes_nothing(stored: Stored, config: str, capsys: Any) -> None:
    argv = ["--db", stored.url, "--config", config, "--before", "2026-10-01", "--force"]
    assert main(["purge", *argv, "--dry-run", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["dry_run"] is True
    assert document["cutoff"] == "2026-09-30T16:00:00+00:00"
    for table in TABLES:
        assert document["tables"][table] == {
            "deleted": stored.expected[table],
            "kept": stored.totals[table] - stored.expected[table],
        }
    with migrated(stored.url) as engine:
        assert {name: count(engine, name) for name in stored.totals} == stored.totals


def test_batches_smaller_than_the_rows_still_delete_them_all(stored: Stored) -> None:
    seen: list[tuple[str, int, int]] = []
    with migrated(stored.url) as engine:
        deleted = purge(engine, CUTOFF, batch_rows=7, progress=lambda *step: seen.append(step))
        assert set(plan(engine, CUTOFF).values()) == {0}
    assert {name: deleted[name] for name in TABLES} == stored.expected
    call_steps = [done for table, done, _ in seen if table == "calls"]
    # One transaction per 7 calls (the last one finds fewer), progress after each.
    assert len(call_steps) == stored.expected["calls"] // 7 + 1
    assert call_steps == sorted(call_steps)
    assert call_steps[-1] == stored.expected["calls"]
    assert ("cdrs", stored.expected["cdrs"], stored.expected["cdrs"]) in seen


@pytest.mark.parametrize("day", ["2026-10-01", "2026-11-23"])
def test_daily_reports_of_kept_days_do_not_change(
    stored: Stored, config: str, day: str, capsys: Any
) -> None:
    argv = ["report", "daily", "--db", stored.url, "--config", config, "--date", day]
    assert main([*argv, "--format", "json"]) == 0
    before = json.loads(capsys.readouterr().out)
    with migrated(stored.url) as engine:
        tallies = rebuild_day(engine, dt.date.fromisoformat(day), TZ)
        purge(engine, CUTOFF, batch_rows=50)
        assert rebuild_day(engine, dt.date.fromisoformat(day), TZ) == tallies
    assert main([*argv, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == before
    assert sum(seat["talk_minutes"] for seat in before["seats"]) > 0


def test_the_command_prints_each_table(stored: Stored, config: str, capsys: Any) -> None:
    argv = ["--db", stored.url, "--config", config, "--before", "2026-10-01", "--force"]
    assert main(["purge", *argv]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rows of days before 2026-10-01 (Asia/Shanghai; before 2026-09-30 16:00")
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    for table in TABLES:
        kept = stored.totals[table] - stored.expected[table]
        assert lines[table] == [f"{stored.expected[table]:,}", f"{kept:,}"], table
    assert lines["policy_versions"][:2] == ["0", "1"]
    assert lines["total"] == [f"{sum(stored.expected.values()):,}"]


@pytest.mark.asyncio
async def test_the_retention_task_purges_in_a_thread_and_logs_the_counts(
    stored: Stored,
) -> None:
    # Today 2026-11-23: 30 days of retention keep 2026-10-24 on, so the edge copy goes whole.
    today = dt.datetime(2026, 11, 23, 12, tzinfo=TZ).timestamp()
    engine = make_engine(stored.url)
    try:
        with capture_logs() as logs:
            task = asyncio.create_task(
                purge_daily(engine, 30, TZ, clock=lambda: today, first_run_s=0, every_s=3600)
            )
            async with asyncio.timeout(30):
                while not any(e["event"] == "store_purged" for e in logs):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        edge_calls = await asyncio.to_thread(_count_where, engine, "edge")
    finally:
        engine.dispose()
    event = next(e for e in logs if e["event"] == "store_purged")
    assert event["before"] == "2026-10-24"
    assert event["calls"] == stored.totals["calls"] - 95 - 2  # the new copies stay
    assert event["violations"] == 3
    assert event["quota_adjustments"] == 4  # 1-4: their days are gone; 6 is the newest
    assert edge_calls == 0


@pytest.mark.asyncio
async def test_the_daemon_purges_when_retention_days_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ctid.db'}"
    long_ago = -400 * DAY_S + (time.time() - 1_795_431_041)  # the capture, 400 days back
    with migrated(url) as engine:
        write_rows(
            engine, capture_units("mixed_busy_period", "old", long_ago), TEST_NUMBERS.protector()
        )
    monkeypatch.setattr(purge_module, "FIRST_RUN_S", 0.0)
    settings = Settings.model_validate(
        {
            "http": {"enabled": False},
            "demo": {
                "capture": CAPTURES / "answered_customer_hangup.ami.gz",
                "speed": 1000,
                "loop": False,
            },
            "store": {"url": url, "data_dir": str(tmp_path), "retention_days": 30},
        }
    )
    with migrated(url) as engine:
        async with running(settings):
            async with asyncio.timeout(15):
                # CDRs go after the calls: once they are gone, so is every old call.
                while await asyncio.to_thread(_count_where, engine, "old", "cdrs"):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        for table in ("calls", "call_segments"):
            assert _count_where(engine, "old", table) == 0


def test_a_cut_off_inside_this_month_or_week_is_refused_unless_forced() -> None:
    monday = dt.date(2026, 11, 23)
    assert protected_since(monday) == dt.date(2026, 11, 1)
    # Wednesday 2 December: the week began on Monday 30 November.
    assert protected_since(dt.date(2026, 12, 2)) == dt.date(2026, 11, 30)
    check_cutoff(dt.date(2026, 11, 1), monday, force=False)
    with pytest.raises(InputError, match="would delete days from 2026-11-01 on"):
        check_cutoff(dt.date(2026, 11, 2), monday, force=False)
    check_cutoff(dt.date(2026, 11, 24), monday, force=True)
    assert retention_cutoff(monday, 90) == dt.date(2026, 8, 25)
    assert retention_cutoff(monday, 7) == dt.date(2026, 11, 1)  # never this month


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--older-than", "0"], "would delete days from "),
        (["--before", "2026-10-01", "--older-than", "3"], "give either --older-than DAYS or"),
        ([], "give either --older-than DAYS or --before YYYY-MM-DD"),
        (["--before", "1/10/2026"], "--before '1/10/2026': not a date, use YYYY-MM-DD"),
        (["--older-than", "90d"], "--older-than '90d': give a whole number from 0 to 100000"),
        (["--before", "2000-01-01", "--batch", "0"], "--batch '0': give a whole number"),
        (["--before", "2000-01-01", "--db", "sqlite:////nonexistent/x.db"], "no database at"),
        (
            ["--before", "2000-01-01", "--db", "postgresql://ctid@127.0.0.1:1/ctid"],
            "cannot read the database: OperationalError",
        ),
    ],
)
def test_mistakes_are_one_line_and_exit_2(
    argv: list[str], message: str, sqlite_url: str, capsys: Any
) -> None:
    with migrated(sqlite_url):
        pass
    if "--db" not in argv:
        argv = [*argv, "--db", sqlite_url]
    assert main(["purge", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("ctid: error: ")
    assert message in err


def test_a_cut_off_long_ago_needs_no_force(stored: Stored, capsys: Any) -> None:
    assert main(["purge", "--db", stored.url, "--before", "2000-01-01"]) == 0
    assert "total                            0" in capsys.readouterr().out


def test_help_explains_the_rules(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        main(["purge", "--help"])
    out = capsys.readouterr().out
    for text in ("--older-than", "--before", "--dry-run", "--force", "never deleted"):
        assert text in out


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "ctid.toml"
    path.write_text('[site]\ntimezone = "Asia/Shanghai"\n', encoding="utf-8")
    return str(path)


def _rows(url: str, table: Any) -> list[dict[str, Any]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(select(table).order_by(table.c.id))
            return [dict(row._mapping) for row in found]
    finally:
        engine.dispose()


def _count_where(engine: Engine, pbx: str, table: str = "calls") -> int:
    schema = metadata.tables[table]
    with engine.connect() as connection:
        return len(connection.execute(select(schema.c.pbx).where(schema.c.pbx == pbx)).all())


def test_revenue_goes_by_day_and_a_month_total_with_its_whole_month(sqlite_url: str) -> None:
    if "revenue" not in metadata.tables:
        pytest.skip("no revenue table in this schema")
    table = metadata.tables["revenue"]
    amounts = [
        ("2026-09-30", "day"),  # deleted
        ("2026-10-14", "day"),  # deleted: the day before the cut-off
        ("2026-10-15", "day"),  # kept
        ("2026-09-01", "month"),  # deleted: all of September is
        ("2026-10-01", "month"),  # kept: October 15-31 are kept
    ]
    values = [
        {"seat": "1001", "day": dt.date.fromisoformat(day), "span": span, "amount_cents": 100}
        | {"source": "test", "imported_at": dt.datetime(2026, 11, 1, tzinfo=dt.UTC)}
        for day, span in amounts
    ]
    with migrated(sqlite_url) as engine:
        with engine.begin() as connection:
            connection.execute(table.insert(), values)
        cutoff = Cutoff.of(dt.date(2026, 10, 15), TZ)
        assert plan(engine, cutoff)["revenue"] == 3
        assert purge(engine, cutoff)["revenue"] == 3
        with engine.connect() as connection:
            kept = connection.execute(select(table.c.day, table.c.span).order_by(table.c.day))
            assert [(str(day), span) for day, span in kept] == [
                ("2026-10-01", "month"),
                ("2026-10-15", "day"),
            ]
