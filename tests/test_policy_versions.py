"""Every quota evaluation that leaves ctid names the policy version that made it."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ctid.policy import QuotaEngine, build_report, write_report_files
from ctid.policy.loader import resolve_seats
from ctid.policy.versioning import read_policy
from tests.test_api import daemon_settings, every_day_policy
from tests.test_daemon import running
from tests.test_policy_engine import MONDAY, POLICY, SHANGHAI, at, work

EXAMPLE = Path(__file__).parent.parent / "examples" / "policy.toml"


def monday_engine() -> QuotaEngine:
    return QuotaEngine(POLICY, resolve_seats(POLICY), start=at(MONDAY, 8))


def test_quota_events_carry_the_policy_version() -> None:
    engine = monday_engine()
    met = work(engine, "1001", at(MONDAY, 10), calls=120)
    assert {(e.kind, e.policy_version) for e in met} == {("quota_met", "2026-11")}
    due = engine.advance(at(MONDAY, 18, 30))
    kinds = {e.kind for e in due}
    assert {"behind_pace", "report_due", "eod_shortfall", "grace_shortfall"} <= kinds
    assert {e.policy_version for e in due} == {"2026-11"}


def test_report_rows_and_files_carry_the_policy_version(tmp_path: Path) -> None:
    engine = monday_engine()
    work(engine, "1001", at(MONDAY, 10), calls=3)
    report = build_report(engine, at(MONDAY, 17, 50))
    assert {row.as_record()["policy_version"] for row in [*report.rows, *report.robots]} == {
        "2026-11"
    }
    csv_path, json_path = write_report_files(report, tmp_path)
    with csv_path.open(encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    assert records
    assert {r["policy_version"] for r in records} == {"2026-11"}
    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert {s["policy_version"] for s in document["seats"] + document["robots"]} == {"2026-11"}


def test_the_document_is_the_text_the_policy_was_read_from(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    policy, document = read_policy(path)
    _, original = read_policy(EXAMPLE)
    assert (document.version, policy.version) == ("2026-11", "2026-11")
    assert document.text.endswith("# edited\n")
    assert document.digest != original.digest  # a comment is an edit too
    assert len(document.digest) == 64


@pytest.mark.asyncio
async def test_the_daemon_logs_quota_events_with_their_policy_version(tmp_path: Path) -> None:
    settings = daemon_settings(every_day_policy(tmp_path))
    async with running(settings) as (floor, _url):
        assert floor.quota is not None
        # A whole idle day's checkpoints, as the scheduler would deliver them.
        day = dt.datetime.now(SHANGHAI).date()
        since = dt.datetime.combine(day, dt.time(0), tzinfo=SHANGHAI)
        events = floor.quota.due_events(since, since + dt.timedelta(hours=19))
        with capture_logs() as logs:
            await floor.on_quota_events([e for e in events if e.kind != "report_due"])
    logged = [e for e in logs if e["event"] in ("behind_pace", "eod_shortfall", "grace_shortfall")]
    assert {e["event"] for e in logged} == {"behind_pace", "eod_shortfall", "grace_shortfall"}
    assert {e["policy_version"] for e in logged} == {"2026-11"}
