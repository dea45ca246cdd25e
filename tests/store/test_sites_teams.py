"""Sites and teams: copied from the config (and the quota policy) into the store on start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from ctid.config import Settings
from ctid.store.directory import configured_places, load_places, sync_places
from ctid.store.engine import make_engine
from ctid.store.runtime import open_store
from ctid.store.schema import sites, teams
from ctid.tracker.tallies import DailyTallies
from tests.store.support import TEST_NUMBERS, count, migrated
from tests.test_daemon import running
from tests.truth import CAPTURES

POLICY = Path(__file__).parents[2] / "examples" / "policy.toml"


def floor_settings(tmp_path: Path, *, policy: bool) -> Settings:
    config: dict[str, Any] = {
        "site": {"name": "hq", "timezone": "Europe/Berlin"},
        "http": {"enabled": False},
        "demo": {
            "capture": CAPTURES / "inbound_queue_answered.ami.gz",
            "speed": 1000,
            "loop": False,
        },
        "seats": [
            {"id": "1001", "team": "north"},
            {"id": "1002", "team": "north"},
            {"id": "1003", "team": "south"},
        ],
        "store": {"data_dir": str(tmp_path), "flush_ms": 20},
    }
    if policy:
        config["policy"] = {"file": POLICY, "report_dir": tmp_path / "reports"}
    return Settings.model_validate(config)


def stored_places(engine: Engine) -> tuple[dict[str, str], dict[tuple[str, str], str | None]]:
    with engine.connect() as connection:
        site_rows = connection.execute(select(sites)).all()
        team_rows = connection.execute(select(teams)).all()
    return (
        {r.name: r.timezone for r in site_rows},
        {(r.site, r.name): r.leader for r in team_rows},
    )


def test_without_a_policy_the_seats_teams_belong_to_the_configured_site(tmp_path: Path) -> None:
    places = configured_places(floor_settings(tmp_path, policy=False))
    assert places.sites == {"hq": "Europe/Berlin"}
    assert places.teams == {("hq", "north"): None, ("hq", "south"): None}


def test_a_policy_adds_its_sites_and_teams_with_their_leaders(tmp_path: Path) -> None:
    places = load_places(floor_settings(tmp_path, policy=True))
    assert places.sites == {"hq": "Europe/Berlin", "shanghai": "Asia/Shanghai"}
    assert places.teams[("shanghai", "team-a")] == "王经理"
    assert places.teams[("shanghai", "team-b")] == "李经理"
    assert places.teams[("shanghai", "robots")] is None
    # With a policy, a config team belongs to the policy's site for it (its only site here).
    assert places.teams[("shanghai", "north")] is None
    assert ("hq", "north") not in places.teams


@pytest.mark.asyncio
async def test_sites_and_teams_after_start_match_the_config(db_url: str, tmp_path: Path) -> None:
    settings = floor_settings(tmp_path, policy=True)
    places = load_places(settings)
    for _ in range(2):  # a second start changes nothing
        async with open_store(
            settings.store,
            DailyTallies(settings.site.tz),
            url=db_url,
            places=places,
            numbers=TEST_NUMBERS,
        ) as store:
            assert stored_places(store.engine) == (places.sites, places.teams)
            assert count(store.engine, "teams") == 5


def test_sites_and_teams_that_leave_the_config_stay(db_url: str, tmp_path: Path) -> None:
    with migrated(db_url) as engine:
        sync_places(engine, load_places(floor_settings(tmp_path, policy=True)))
        sync_places(engine, configured_places(floor_settings(tmp_path, policy=False)))
        found_sites, found_teams = stored_places(engine)
    assert set(found_sites) == {"hq", "shanghai"}
    assert found_teams[("shanghai", "team-a")] == "王经理"
    assert found_teams[("hq", "north")] is None


@pytest.mark.asyncio
async def test_the_daemon_stores_the_sites_and_teams_on_start(tmp_path: Path) -> None:
    settings = floor_settings(tmp_path, policy=True)
    engine = make_engine(f"sqlite:///{settings.store.data_dir / 'ctid.db'}")
    try:
        async with running(settings):
            found = await asyncio.to_thread(stored_places, engine)
    finally:
        engine.dispose()
    places = load_places(settings)
    assert found == (places.sites, places.teams)
