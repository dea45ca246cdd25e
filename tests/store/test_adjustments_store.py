"""Quota adjustments in the store: recorded through the API, back after a restart, ids go on."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ctid.policy import Adjustment, Adjustments
from ctid.store.adjustments import (
    RESTORE_DAYS,
    adjustment_row,
    adjustments_from,
    load_adjustments,
)
from ctid.store.spool import Spool
from ctid.store.upsert import write_rows
from tests.store.audit_support import daemon_settings, rows, rows_when
from tests.store.support import TcpProxy, migrated
from tests.test_api import AUTH, TOKEN, every_day_policy, run_cli, today
from tests.test_daemon import running

WHEN = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC)


def entry(id_: int, day: dt.date, kind: Any = "leave", **extra: Any) -> Adjustment:
    return Adjustment(id_, "1001", day, kind, "mgr", WHEN, f"reason {id_}", **extra)


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with http.post(f"{url}/api/adjustments", json=body) as response:
        assert response.status == 201, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def revoke(http: aiohttp.ClientSession, url: str, id_: int, why: str) -> dict[str, Any]:
    body = {"who": "lead", "why": why}
    async with http.delete(f"{url}/api/adjustments/{id_}", json=body) as response:
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


def body(seat: str, kind: str, day: str, **extra: Any) -> dict[str, Any]:
    return {"seat": seat, "date": day, "kind": kind, "who": "mgr", "why": f"{kind} {seat}"} | extra


@pytest.mark.asyncio
async def test_adjustments_survive_a_restart_and_new_ids_do_not_collide(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = daemon_settings(db_url, tmp_path, every_day_policy(tmp_path))
    day = dt.date.fromisoformat(today())
    tomorrow = (day + dt.timedelta(days=1)).isoformat()
    async with running(settings) as (_floor, url), aiohttp.ClientSession(headers=AUTH) as http:
        override = body("1001", "override", today(), quota="effective_calls", value=50)
        assert (await post(http, url, override))["id"] == 1
        assert (await post(http, url, body("1002", "leave", today())))["id"] == 2
        assert (await revoke(http, url, 2, "came in after all"))["id"] == 3
        visit = await post(http, url, body("1001", "field_visit", tomorrow, hours=3))
        assert visit["id"] == 4

    async with running(settings) as (floor, url), aiohttp.ClientSession(headers=AUTH) as http:
        engine = floor.quota
        assert engine is not None
        assert engine.targets("1001", day)["effective_calls"] == 50
        assert engine.targets("1002", day) != {}  # the leave was revoked: quotas again
        next_day = day + dt.timedelta(days=1)
        assert engine.targets("1001", next_day)["effective_calls"] == 80  # 3 h of 9 h away

        config = tmp_path / "ctid.toml"
        config.write_text(f'[http]\napi_token = "{TOKEN}"\n', encoding="utf-8")
        common = ["--config", str(config), "--url", url, "--date", today()]
        assert await run_cli("adjust", "list", *common) == 0
        # The daemon logs to the same stdout: keep the command's lines.
        listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("#")]
        assert [line.split()[:3] for line in listed] == [
            ["#1", "active", "override"],
            ["#2", "-", "leave"],
            ["#3", "-", "revoke"],
        ]
        assert "by lead" in listed[2]
        assert "came in after all" in listed[2]

        assert (await post(http, url, body("1002", "half_day", today())))["id"] == 5
        assert (await revoke(http, url, 1, "training cancelled"))["id"] == 6
        assert engine.targets("1001", day)["effective_calls"] == 120

    stored = await asyncio.to_thread(rows, db_url, "quota_adjustments")
    assert [(r["id"], r["kind"], r["revokes"]) for r in stored] == [
        (1, "override", None),
        (2, "leave", None),
        (3, "revoke", 2),
        (4, "field_visit", None),
        (5, "half_day", None),
        (6, "revoke", 1),
    ]
    assert (stored[2]["by"], stored[2]["reason"]) == ("lead", "came in after all")
    assert stored[0]["at"].tzinfo is not None


def test_the_spool_and_the_database_together_give_the_entries_and_the_next_id(
    db_url: str, tmp_path: Path
) -> None:
    today_ = dt.date(2026, 11, 23)
    old = today_ - dt.timedelta(days=RESTORE_DAYS + 1)
    with migrated(db_url) as engine:
        write_rows(
            engine,
            [
                adjustment_row(entry(1, old)),
                adjustment_row(entry(2, today_, "override", quota="dials", value=9)),
                adjustment_row(entry(3, today_, "half_day")),
            ],
        )
        # Written while the database was down: still in the spool file at the restart.
        spool = Spool(tmp_path / "store-spool.jsonl", 1000)
        revocation = entry(5, today_, "revoke", revokes=3)
        spool.append([(adjustment_row(entry(4, today_, "field_visit", hours=2.0)),)])
        spool.append([(adjustment_row(revocation),)])

        stored = load_adjustments(engine, today_ - dt.timedelta(days=RESTORE_DAYS), spool.path)

    assert [a.id for a in stored.entries] == [2, 3, 4, 5]  # 1 is older than the window
    assert stored.next_id == 6
    assert stored.entries[-1] == revocation
    adjustments = Adjustments()
    adjustments.restore(stored.entries, stored.next_id)
    net = adjustments.for_day("1001", today_)
    assert (net.half_day, net.field_visit_hours, net.overrides) == (False, 2.0, {"dials": 9})
    added = adjustments.leave("1001", today_, by="mgr", at=WHEN, reason="sick")
    assert added.id == 6


def test_reports_get_the_stored_days_net_of_revocations(db_url: str) -> None:
    day = dt.date(2026, 11, 23)
    with migrated(db_url) as engine:
        write_rows(
            engine,
            [
                adjustment_row(entry(1, day - dt.timedelta(days=1))),
                adjustment_row(entry(2, day)),
                adjustment_row(entry(3, day, "field_visit", hours=3.0)),
                adjustment_row(entry(4, day, "revoke", revokes=2)),
            ],
        )
        adjustments = adjustments_from(engine, day)
    assert [a.id for a in adjustments.history] == [2, 3, 4]
    net = adjustments.for_day("1001", day)
    assert (net.leave, net.field_visit_hours) == (False, 3.0)


def test_a_stored_entry_is_never_changed_by_a_second_write(db_url: str) -> None:
    day = dt.date(2026, 11, 23)
    with migrated(db_url) as engine:
        write_rows(engine, [adjustment_row(entry(1, day))])
        rewritten = Adjustment(1, "1001", day, "leave", "someone else", WHEN, "edited")
        write_rows(engine, [adjustment_row(rewritten)])
    (stored,) = rows(db_url, "quota_adjustments")
    assert (stored["by"], stored["reason"]) == ("mgr", "reason 1")


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_with_the_database_down_at_start_writes_wait_until_the_entries_are_back(
    pg_url: str, tmp_path: Path
) -> None:
    day = dt.date.fromisoformat(today())
    with migrated(pg_url) as engine:
        override = entry(7, day, "override", quota="effective_calls", value=40)
        write_rows(engine, [adjustment_row(override)])
    proxy = TcpProxy(pg_url)
    settings = daemon_settings(proxy.url, tmp_path, every_day_policy(tmp_path))
    try:
        async with running(settings) as (floor, url), aiohttp.ClientSession(headers=AUTH) as h:
            async with h.post(f"{url}/api/adjustments", json=body("1001", "leave", today())) as r:
                assert r.status == 503
                assert "not loaded yet" in (await r.json())["error"]
            await proxy.up()
            async with asyncio.timeout(15):
                # Polling as a client would: the restore's retry has no event to wait on.
                while (listed := await _listed_ids(h, url)) is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            assert listed == [7]
            assert floor.quota is not None
            assert floor.quota.targets("1001", day)["effective_calls"] == 40
            assert (await post(h, url, body("1002", "leave", today())))["id"] == 8
        stored = await rows_when(pg_url, "quota_adjustments", lambda found: len(found) == 2)
        assert [r["id"] for r in stored] == [7, 8]
    finally:
        await proxy.down()


async def _listed_ids(http: aiohttp.ClientSession, url: str) -> list[int] | None:
    """Ids listed for today; ``None`` while the API answers 503."""
    async with http.get(f"{url}/api/adjustments", params={"date": today()}) as response:
        if response.status == 503:
            return None
        return [item["id"] for item in (await response.json())["adjustments"]]
