"""Hot reload of the policy file in the running daemon: on change, on request (SIGHUP)."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from ctid.daemon import _StopRequested, _wait_for_signal
from ctid.floor import Floor
from ctid.policy import reload
from tests.test_api import daemon_settings, every_day_policy, today
from tests.test_daemon import _samples, running


async def eventually(condition: Callable[[], bool]) -> None:
    for _ in range(250):  # 5 s
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def version(floor: Floor) -> str:
    assert floor.quota is not None
    return floor.quota.policy.version


async def reload_failures(url: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        samples = _samples(await response.text())
    return samples[("ctid_policy_reload_failures_total", ())]


async def policy_info_versions(url: str) -> list[str]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        samples = _samples(await response.text())
    return [dict(labels)["version"] for name, labels in samples if name == "ctid_policy_info"]


@pytest.mark.asyncio
async def test_an_edited_policy_file_replaces_the_policy_and_keeps_todays_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reload, "POLL_SECONDS", 0.05)
    policy = every_day_policy(tmp_path)
    day = dt.date.fromisoformat(today())
    with capture_logs() as logs:
        async with running(daemon_settings(policy)) as (floor, url):
            engine = floor.quota
            assert engine is not None
            assert await policy_info_versions(url) == ["2026-11"]
            engine.add("1001", day, "effective_calls", 7, dt.datetime.now(dt.UTC))
            assert engine.targets("1001", day)["effective_calls"] == 120
            rewrite(policy, 'version = "2026-11"', 'version = "2026-12"')
            rewrite(
                policy,
                "quotas = { talk_minutes = 100, faxes = 8, effective_calls = 120,",
                "quotas = { talk_minutes = 100, faxes = 8, effective_calls = 90,",
            )
            await eventually(lambda: version(floor) == "2026-12")
            assert floor.quota is engine
            assert engine.targets("1001", day)["effective_calls"] == 90
            assert engine.actuals("1001", day)["effective_calls"] == 7
            assert await policy_info_versions(url) == ["2026-12"]
    reloaded = [e for e in logs if e["event"] == "policy_reloaded"]
    assert [(e["version"], e["previous"]) for e in reloaded] == [("2026-12", "2026-11")]


@pytest.mark.asyncio
async def test_an_invalid_policy_file_keeps_the_old_policy_and_is_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reload, "POLL_SECONDS", 0.05)
    policy = every_day_policy(tmp_path)
    with capture_logs() as logs:
        async with running(daemon_settings(policy)) as (floor, url):
            assert await reload_failures(url) == 0
            rewrite(policy, 'timezone = "Asia/Shanghai"', 'timezone = "Asia/Shanghi"')
            rewrite(policy, 'version = "2026-11"', 'version = "2026-12"')
            await eventually(lambda: any(e["event"] == "policy_reload_failed" for e in logs))
            await asyncio.sleep(0.3)  # several more polls of the unchanged, still broken file
            assert await reload_failures(url) == 1
            assert version(floor) == "2026-11"
    failed = [e for e in logs if e["event"] == "policy_reload_failed"]
    assert len(failed) == 1
    assert failed[0]["log_level"] == "error"
    assert "unknown time zone 'Asia/Shanghi'" in failed[0]["reason"]
    assert "\n" not in failed[0]["reason"]


@pytest.mark.asyncio
async def test_the_sighup_callback_reloads_even_when_the_file_looks_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reload, "POLL_SECONDS", 3600.0)  # only a request can wake the watcher
    policy = every_day_policy(tmp_path)
    async with running(daemon_settings(policy)) as (floor, _url):
        rewrite(policy, 'version = "2026-11"', 'version = "2026-12"')
        await asyncio.sleep(0.1)
        assert version(floor) == "2026-11"
        assert floor.policy_reloader is not None
        floor.policy_reloader.request()  # what the daemon's SIGHUP handler calls
        await eventually(lambda: version(floor) == "2026-12")


@pytest.mark.asyncio
async def test_sighup_calls_the_reload_callback_and_sigterm_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No real signal reaches the pytest process: the loop's handler table is faked.
    loop = asyncio.get_running_loop()
    handlers: dict[int, Callable[[], object]] = {}
    monkeypatch.setattr(loop, "add_signal_handler", handlers.__setitem__)
    monkeypatch.setattr(loop, "remove_signal_handler", handlers.pop)
    reloads: list[int] = []
    waiting = asyncio.create_task(_wait_for_signal(lambda: reloads.append(1)))
    await asyncio.sleep(0)
    handlers[signal.SIGHUP]()
    assert reloads == [1]
    handlers[signal.SIGTERM]()
    with pytest.raises(_StopRequested):
        await waiting
    assert handlers == {}


@pytest.mark.asyncio
async def test_sighup_without_a_policy_is_caught_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    # Uncaught, SIGHUP would end the daemon and systemd would not restart it.
    loop = asyncio.get_running_loop()
    handlers: dict[int, Callable[[], object]] = {}
    monkeypatch.setattr(loop, "add_signal_handler", handlers.__setitem__)
    monkeypatch.setattr(loop, "remove_signal_handler", handlers.pop)
    waiting = asyncio.create_task(_wait_for_signal(None))
    await asyncio.sleep(0)
    handlers[signal.SIGHUP]()
    assert not waiting.done()
    handlers[signal.SIGINT]()
    with pytest.raises(_StopRequested):
        await waiting
