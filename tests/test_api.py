"""The adjustments API over real HTTP against the running daemon, and ``ctid adjust`` against it."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from ctid.cli import main
from ctid.config import Settings
from tests.test_daemon import _samples, running
from tests.truth import CAPTURES

EXAMPLE_POLICY = Path(__file__).parent.parent / "examples" / "policy.toml"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def every_day_policy(tmp_path: Path) -> Path:
    """The example policy with every day a workday, so quotas exist whatever day tests run."""
    text = EXAMPLE_POLICY.read_text(encoding="utf-8")
    text = re.sub(
        r"(?m)^workdays = .*$",
        'workdays = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]',
        text,
    )
    text = re.sub(r"(?m)^holidays = .*$", "holidays = []", text)
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def daemon_settings(policy: Path, **http: Any) -> Settings:
    return Settings(
        http={"port": 0, **http},
        demo={
            "capture": CAPTURES / "answered_customer_hangup.ami.gz",
            "speed": 1000,
            "loop": False,
        },
        policy={"file": policy},
        seats=[{"id": "1001", "team": "team-a"}, {"id": "1002", "team": "team-a"}],
    )


def today() -> str:
    return dt.datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


def leave(seat: str = "1001", **extra: Any) -> dict[str, Any]:
    return {"seat": seat, "date": today(), "kind": "leave", "who": "mgr", "why": "sick"} | extra


async def quota_target(
    http: aiohttp.ClientSession, url: str, seat: str, quota: str
) -> float | None:
    async with http.get(f"{url}/metrics") as response:
        samples = _samples(await response.text())
    for (name, labels), value in samples.items():
        found = dict(labels)
        if name == "ctid_seat_quota_target" and (found.get("seat"), found.get("quota")) == (
            seat,
            quota,
        ):
            return value
    return None


@pytest.mark.asyncio
async def test_leave_and_override_change_the_quota_target_until_revoked(tmp_path: Path) -> None:
    settings = daemon_settings(every_day_policy(tmp_path), api_token=TOKEN)
    async with running(settings) as (floor, url), aiohttp.ClientSession(headers=AUTH) as http:
        assert await quota_target(http, url, "1001", "effective_calls") == 120
        body = leave(kind="override", quota="effective_calls", value=50)
        async with http.post(f"{url}/api/adjustments", json=body) as response:
            assert response.status == 201
            override = await response.json()
        assert override["who"] == "mgr"
        assert override["why"] == "sick"
        assert override["active"] is True
        assert dt.datetime.fromisoformat(override["when"]).tzinfo is not None
        assert await quota_target(http, url, "1001", "effective_calls") == 50

        async with http.post(f"{url}/api/adjustments", json=leave()) as response:
            assert response.status == 201
            on_leave = await response.json()
        assert await quota_target(http, url, "1001", "effective_calls") is None
        assert floor.quota is not None
        assert floor.quota.targets("1001", dt.date.fromisoformat(today())) == {}

        revoke = {"who": "mgr", "why": "came in after all"}
        async with http.delete(f"{url}/api/adjustments/{on_leave['id']}", json=revoke) as response:
            assert response.status == 200
            assert (await response.json())["revokes"] == on_leave["id"]
        assert await quota_target(http, url, "1001", "effective_calls") == 50

        async with http.get(f"{url}/api/adjustments", params={"date": today()}) as response:
            listed = (await response.json())["adjustments"]
        assert [(a["kind"], a["active"]) for a in listed] == [
            ("override", True),
            ("leave", False),
            ("revoke", False),
        ]


@pytest.mark.asyncio
async def test_writes_are_refused_without_a_configured_token(tmp_path: Path) -> None:
    settings = daemon_settings(every_day_policy(tmp_path))
    async with running(settings) as (_floor, url), aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/adjustments", json=leave()) as response:
            assert response.status == 403
            assert await response.json() == {"error": "API writes disabled: set http.api_token"}
        async with http.get(f"{url}/api/adjustments") as response:
            assert response.status == 200


@pytest.mark.asyncio
async def test_a_wrong_or_missing_token_is_401(tmp_path: Path) -> None:
    settings = daemon_settings(every_day_policy(tmp_path), api_token=TOKEN)
    async with running(settings) as (floor, url), aiohttp.ClientSession() as http:
        for headers in ({"Authorization": "Bearer nope"}, {}, {"Authorization": TOKEN}):
            async with http.post(f"{url}/api/adjustments", json=leave(), headers=headers) as r:
                assert r.status == 401
            async with http.get(f"{url}/api/adjustments", headers=headers) as r:
                assert r.status == 401
        assert floor.quota is not None
        assert floor.quota.adjustments.history == []


@pytest.mark.asyncio
async def test_the_token_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTID_TEST_API_TOKEN", TOKEN)
    settings = daemon_settings(every_day_policy(tmp_path), api_token_env="CTID_TEST_API_TOKEN")
    async with (
        running(settings) as (_floor, url),
        aiohttp.ClientSession(headers=AUTH) as http,
        http.post(f"{url}/api/adjustments", json=leave()) as response,
    ):
        assert response.status == 201


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (leave(seat="7777"), 400, "seat: unknown seat '7777'"),
        (leave(date="23/11/2026"), 400, "date: "),
        (leave(kind="vacation"), 400, "kind: "),
        (leave(kind="field_visit"), 400, "hours is required for kind field_visit"),
        (leave(kind="field_visit", hours=-1), 400, "hours: "),
        (leave(kind="override", quota="effective_calls"), 400, "value is required"),
        (leave(kind="override", quota="calls", value=3), 400, "quota: "),
        (leave(hours=3), 400, "hours is not allowed for kind leave"),
        (leave(who=""), 400, "who: "),
        (leave(colour="red"), 400, "colour: "),
        ("not json", 400, "Invalid JSON"),
        (leave(why="x" * 20_000), 413, "body larger than 16384 bytes"),
    ],
)
@pytest.mark.asyncio
async def test_invalid_bodies_get_a_json_error_naming_the_field(
    tmp_path: Path, body: Any, status: int, error: str
) -> None:
    settings = daemon_settings(every_day_policy(tmp_path), api_token=TOKEN)
    async with running(settings) as (floor, url), aiohttp.ClientSession(headers=AUTH) as http:
        kwargs: dict[str, Any] = {"data": body} if isinstance(body, str) else {"json": body}
        async with http.post(f"{url}/api/adjustments", **kwargs) as response:
            assert response.status == status
            assert error in (await response.json())["error"]
        assert floor.quota is not None
        assert floor.quota.adjustments.history == []


@pytest.mark.asyncio
async def test_revoke_answers_404_for_unknown_ids_and_409_when_already_revoked(
    tmp_path: Path,
) -> None:
    settings = daemon_settings(every_day_policy(tmp_path), api_token=TOKEN)
    revoke = {"who": "mgr", "why": "mistake"}
    async with running(settings) as (_floor, url), aiohttp.ClientSession(headers=AUTH) as http:
        for unknown in ("99", "abc"):
            async with http.delete(f"{url}/api/adjustments/{unknown}", json=revoke) as response:
                assert response.status == 404
        async with http.post(f"{url}/api/adjustments", json=leave()) as response:
            entry = await response.json()
        async with http.post(f"{url}/api/adjustments", json=leave()) as response:
            assert response.status == 409
        async with http.delete(f"{url}/api/adjustments/{entry['id']}", json={}) as response:
            assert response.status == 400
            assert "who: " in (await response.json())["error"]
        async with http.delete(f"{url}/api/adjustments/{entry['id']}", json=revoke) as response:
            assert response.status == 200
        async with http.delete(f"{url}/api/adjustments/{entry['id']}", json=revoke) as response:
            assert response.status == 409
        async with http.get(f"{url}/api/adjustments", params={"date": "2026-13-01"}) as response:
            assert response.status == 400
            assert (await response.json())["error"] == "date: expected YYYY-MM-DD"


@pytest.mark.asyncio
async def test_the_api_answers_409_when_no_policy_is_loaded() -> None:
    settings = Settings(
        http={"port": 0, "api_token": TOKEN},
        demo={
            "capture": CAPTURES / "answered_customer_hangup.ami.gz",
            "speed": 1000,
            "loop": False,
        },
    )
    async with (
        running(settings) as (_floor, url),
        aiohttp.ClientSession(headers=AUTH) as http,
        http.post(f"{url}/api/adjustments", json=leave()) as response,
    ):
        assert response.status == 409


async def run_cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


@pytest.mark.asyncio
async def test_the_cli_adds_lists_and_revokes_through_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ctid.toml"
    config.write_text(f'[http]\napi_token = "{TOKEN}"\n', encoding="utf-8")
    settings = daemon_settings(every_day_policy(tmp_path), api_token=TOKEN)
    async with running(settings) as (floor, url):
        common = ["--config", str(config), "--url", url]
        date = ["--date", today()]
        assert (
            await run_cli(
                "adjust",
                "add",
                "1002",
                "field_visit",
                "--hours",
                "3",
                "--who",
                "mgr",
                "--why",
                "client visit",
                *date,
                *common,
            )
            == 0
        )
        assert "recorded #1: field_visit 3 h for seat 1002" in capsys.readouterr().out
        assert floor.quota is not None
        day = dt.date.fromisoformat(today())
        assert floor.quota.adjustments.for_day("1002", day).field_visit_hours == 3

        assert await run_cli("adjust", "list", *date, *common) == 0
        listed = capsys.readouterr().out
        assert "#1" in listed
        assert "by mgr" in listed
        assert "client visit" in listed

        assert await run_cli("adjust", "revoke", "1", "--why", "cancelled", *common) == 0
        assert "revoked #1 (recorded as #2)" in capsys.readouterr().out
        assert floor.quota.adjustments.for_day("1002", day).field_visit_hours == 0

        assert await run_cli("adjust", "revoke", "1", "--why", "again", *common) == 2
        assert "daemon refused (409)" in capsys.readouterr().err
        assert await run_cli("adjust", "add", "1002", "leave", "--why", "x", "--url", url) == 2
        assert "daemon refused (401)" in capsys.readouterr().err


def test_the_cli_says_in_one_line_when_the_daemon_is_not_running(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["adjust", "list", "--url", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ctid: error: cannot reach the daemon at http://127.0.0.1:1")
    assert err.count("\n") == 1
