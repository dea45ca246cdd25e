"""Activated quota policies reach ``policy_versions``: on start and reload, once per text."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ctid.floor import Floor
from tests.store.audit_support import daemon_settings, rows, rows_when
from tests.store.support import wait_for
from tests.test_api import every_day_policy
from tests.test_daemon import running
from tests.test_policy_reload import rewrite


async def reload_and_flush(floor: Floor) -> None:
    assert floor.policy_reloader is not None
    assert await floor.policy_reloader.reload()
    assert floor.store is not None
    writer = floor.store.writer
    await wait_for(lambda: writer.backlog == 0)


@pytest.mark.asyncio
async def test_each_distinct_policy_text_is_recorded_once_with_its_document(
    db_url: str, tmp_path: Path
) -> None:
    policy = every_day_policy(tmp_path)
    first = policy.read_text(encoding="utf-8")
    settings = daemon_settings(db_url, tmp_path, policy)
    with capture_logs() as logs:
        async with running(settings) as (floor, _url):
            (started,) = await rows_when(db_url, "policy_versions", lambda found: bool(found))
            assert started["name"] == "2026-11"
            assert started["digest"] == hashlib.sha256(first.encode()).hexdigest()
            assert started["document"] == first
            assert started["activated_at"].tzinfo is not None

            await reload_and_flush(floor)  # the same text again: nothing new
            assert len(await asyncio.to_thread(rows, db_url, "policy_versions")) == 1

            rewrite(policy, 'version = "2026-11"', 'version = "2026-12"')
            await reload_and_flush(floor)
            rewrite(policy, "grace_minutes = 30", "grace_minutes = 20")  # label left alone
            await reload_and_flush(floor)
        async with running(settings):  # a restart on the last text adds nothing either
            pass
    stored = await asyncio.to_thread(rows, db_url, "policy_versions")
    assert [row["name"] for row in stored] == ["2026-11", "2026-12", "2026-12"]
    assert stored[-1]["document"] == policy.read_text(encoding="utf-8")
    assert len({row["digest"] for row in stored}) == 3
    unchanged = [e for e in logs if e["event"] == "policy_version_label_unchanged"]
    assert [e["version"] for e in unchanged] == ["2026-12"]
