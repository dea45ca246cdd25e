"""The do-not-call list administered over HTTP (/api/dnc) and ``ctid dnc`` against the daemon."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from ctid.cli import main
from ctid.compliance import ComplianceSettings, Mode, Rule
from ctid.compliance.optout import Listing
from ctid.compliance.service import ComplianceService
from ctid.config import Settings
from ctid.floor import Floor
from ctid.tracker.model import OutboundDial
from tests.test_api import run_cli
from tests.test_daemon import running
from tests.truth import CAPTURES

TOKEN = "dnc-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NUMBER = "+17203000104"
MASKED = "+17*******04"


def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "compliance.toml"
    path.write_text(
        'version = "dnc-1"\ndefault_region = "US"\n'
        '[calling_hours]\nmode = "off"\n[frequency]\nmode = "off"\n'
        f'[do_not_call]\nmode = "enforce"\ndata_dir = "{tmp_path / "data"}"\n',
        encoding="utf-8",
    )
    return path


def settings_for(tmp_path: Path, *, token: str | None = TOKEN, compliance: bool = True) -> Settings:
    http: dict[str, Any] = {"port": 0}
    if token is not None:
        http["api_token"] = token
    extra: dict[str, Any] = {"compliance": policy_file(tmp_path)} if compliance else {}
    return Settings(
        http=http,
        demo={
            "capture": CAPTURES / "answered_customer_hangup.ami.gz",
            "speed": 1000,
            "loop": False,
        },
        **extra,
    )


def service(floor: Floor) -> ComplianceService:
    assert floor.compliance is not None
    return floor.compliance


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def journal_lines(path: Path, count: int) -> list[dict[str, Any]]:
    """The journal once it has ``count`` lines (the service's timer writes it)."""
    for _ in range(100):
        lines = await asyncio.to_thread(read_lines, path)
        if len(lines) >= count:
            return lines
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never had {count} lines")


@pytest.mark.asyncio
async def test_an_added_number_is_checked_journalled_and_stops_the_next_dial(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    async with running(settings) as (floor, url), aiohttp.ClientSession(headers=AUTH) as http:
        async with http.get(f"{url}/api/dnc/7203000104") as response:
            assert response.status == 200
            assert await response.json() == {"number": MASKED, "listed": False}
        body = {"number": "(720) 300-0104", "reason": "asked on the phone", "who": "ann"}
        async with http.post(f"{url}/api/dnc", json=body) as response:
            assert response.status == 201
            text = await response.text()
        added = json.loads(text)
        assert added["added"] is True
        assert added["number"] == MASKED
        assert "3000104" not in text  # answered masked
        # The number as dialled, in another format: the guard stops it from this event on.
        dial = OutboundDial("demo", 1.0, "1001", "17203000104", None, "L1")
        (decision,) = service(floor).guard.on_effect(dial)
        assert (decision.rule, decision.mode) == (Rule.DO_NOT_CALL, Mode.ENFORCE)

        async with http.get(f"{url}/api/dnc/%2B1%20720%20300%200104") as response:
            listed = await response.json()
        assert listed["listed"] is True
        assert listed["source"] == "http:ann"
        assert listed["reason"] == "asked on the phone"
        assert listed["since"].endswith("+00:00")

        journal = tmp_path / "data" / "optouts.jsonl"
        (line,) = await journal_lines(journal, 1)
        assert line["op"] == "add"
        assert line["number"] == NUMBER
        assert line["source"] == "http:ann"
        assert line["reason"] == "asked on the phone"


@pytest.mark.asyncio
async def test_adding_twice_and_removing_twice(tmp_path: Path) -> None:
    async with running(settings_for(tmp_path)) as (floor, url), aiohttp.ClientSession() as http:
        for status, added in ((201, True), (200, False)):
            body = {"number": NUMBER}
            async with http.post(f"{url}/api/dnc", json=body, headers=AUTH) as response:
                assert response.status == status
                assert (await response.json())["added"] is added
        async with http.delete(f"{url}/api/dnc/7203000104", headers=AUTH) as response:
            assert response.status == 200
            assert await response.json() == {"number": MASKED, "removed": True}
        assert NUMBER not in service(floor).guard.optouts
        async with http.delete(f"{url}/api/dnc/7203000104", headers=AUTH) as response:
            assert response.status == 404
            assert await response.json() == {"error": f"{MASKED} is not on the do-not-call list"}
        lines = await journal_lines(tmp_path / "data" / "optouts.jsonl", 2)
        assert [(line["op"], line["number"]) for line in lines] == [
            ("add", NUMBER),
            ("remove", NUMBER),
        ]


@pytest.mark.asyncio
async def test_with_a_token_configured_every_request_needs_it(tmp_path: Path) -> None:
    async with running(settings_for(tmp_path)) as (floor, url), aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer nope"}):
            async with http.get(f"{url}/api/dnc/{NUMBER}", headers=headers) as response:
                assert response.status == 401
            async with http.post(
                f"{url}/api/dnc", json={"number": NUMBER}, headers=headers
            ) as response:
                assert response.status == 401
            async with http.delete(f"{url}/api/dnc/{NUMBER}", headers=headers) as response:
                assert response.status == 401
            async with http.post(
                f"{url}/api/dnc/import", data="number\n7203000104\n", headers=headers
            ) as response:
                assert response.status == 401
        assert len(service(floor).guard.optouts) == 0


@pytest.mark.asyncio
async def test_without_a_configured_token_reads_are_open_and_writes_disabled(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path, token=None)
    async with running(settings) as (floor, url), aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/dnc", json={"number": NUMBER}) as response:
            assert response.status == 403
            assert await response.json() == {"error": "API writes disabled: set http.api_token"}
        async with http.get(f"{url}/api/dnc/{NUMBER}") as response:
            assert response.status == 200
        assert len(service(floor).guard.optouts) == 0


@pytest.mark.asyncio
async def test_without_a_compliance_policy_the_list_is_409(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, compliance=False)
    async with (
        running(settings) as (_floor, url),
        aiohttp.ClientSession(headers=AUTH) as http,
        http.get(f"{url}/api/dnc/{NUMBER}") as response,
    ):
        assert response.status == 409
        assert (await response.json())["error"] == "no compliance policy loaded: set compliance"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"number": "12ab"}, 400, "number: not a phone number (default region US)"),
        ({"number": "123"}, 400, "number: not a phone number"),
        ({"number": ""}, 400, "number: String should have at least 1 character"),
        ({"number": NUMBER, "colour": "red"}, 400, "colour: Extra inputs are not permitted"),
        ({"reason": "x"}, 400, "number: Field required"),
        ({"number": NUMBER, "reason": "x" * 20_000}, 413, "body larger than 16384 bytes"),
        ("not json", 400, "Invalid JSON"),
    ],
)
@pytest.mark.asyncio
async def test_invalid_bodies_are_refused_with_a_json_error(
    tmp_path: Path, body: Any, status: int, error: str
) -> None:
    async with running(settings_for(tmp_path)) as (floor, url), aiohttp.ClientSession() as http:
        kwargs: dict[str, Any] = {"data": body} if isinstance(body, str) else {"json": body}
        async with http.post(f"{url}/api/dnc", headers=AUTH, **kwargs) as response:
            assert response.status == status
            assert error in (await response.json())["error"]
        assert len(service(floor).guard.optouts) == 0


@pytest.mark.asyncio
async def test_an_invalid_number_in_the_path_is_400(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with running(settings) as (_floor, url), aiohttp.ClientSession(headers=AUTH) as http:
        async with http.get(f"{url}/api/dnc/12ab") as response:
            assert response.status == 400
        async with http.delete(f"{url}/api/dnc/12ab", headers=AUTH) as response:
            assert response.status == 400


@pytest.mark.asyncio
async def test_import_counts_added_already_and_invalid_rows_by_line(tmp_path: Path) -> None:
    csv_body = (
        "\ufeffname,Number\n"  # a BOM and a capitalised header, as spreadsheets write them
        "Ann,7203000104\n"
        "Bob,12ab\n"
        "\n"
        'Cy,"+1 (212) 555-1234"\n'
        "Di,720-300-0104\n"  # the same as Ann's
        "Ed,\n"
        "Fay,2125559876\n"
    )
    async with running(settings_for(tmp_path)) as (floor, url), aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/dnc", json={"number": "2125559876"}, headers=AUTH) as r:
            assert r.status == 201
        async with http.post(
            f"{url}/api/dnc/import",
            data=csv_body.encode(),
            params={"who": "ann", "reason": "weekly list"},
            headers=AUTH,
        ) as response:
            assert response.status == 200
            answer = await response.json()
        assert answer == {"added": 2, "already": 2, "invalid": 2, "invalid_lines": [3, 7]}
        optouts = service(floor).guard.optouts
        assert len(optouts) == 3
        listing = optouts.listing("+12125551234")
        assert listing is not None
        assert (listing.source, listing.reason) == ("http:ann", "weekly list")


@pytest.mark.parametrize(
    ("body", "params", "status", "error"),
    [
        (b"phone\n7203000104\n", {}, 400, "line 1: no 'number' column in the header ['phone']"),
        (b"number\n720\xff\n", {}, 400, "body: not UTF-8 text (byte 10)"),
        (b"number\n7203000104\n", {"colour": "red"}, 400, "colour: Extra inputs"),
        (b"number\n" + b"7203000104\n" * 400_000, {}, 413, "body larger than 4194304 bytes"),
    ],
)
@pytest.mark.asyncio
async def test_a_bad_import_is_refused_and_adds_nothing(
    tmp_path: Path, body: bytes, params: dict[str, str], status: int, error: str
) -> None:
    async with running(settings_for(tmp_path)) as (floor, url), aiohttp.ClientSession() as http:
        async with http.post(
            f"{url}/api/dnc/import", data=io.BytesIO(body), params=params, headers=AUTH
        ) as response:
            assert response.status == status
            assert error in (await response.json())["error"]
        assert len(service(floor).guard.optouts) == 0


@pytest.mark.asyncio
async def test_logs_show_the_number_masked_only(tmp_path: Path) -> None:
    async with running(settings_for(tmp_path)) as (_floor, url), aiohttp.ClientSession() as http:
        with structlog.testing.capture_logs() as logs:
            async with http.post(f"{url}/api/dnc", json={"number": NUMBER}, headers=AUTH) as r:
                assert r.status == 201
            async with http.post(
                f"{url}/api/dnc/import", data=b"number\n2125551234\n", headers=AUTH
            ) as response:
                assert response.status == 200
            await journal_lines(tmp_path / "data" / "optouts.jsonl", 2)
    changed = [entry for entry in logs if entry["event"] == "dnc_changed"]
    assert {entry["number"] for entry in changed} == {MASKED, "+12*******34"}
    text = repr(logs)
    assert "7203000104" not in text
    assert "2125551234" not in text


# --- ctid dnc ---------------------------------------------------------------------------


def cli_config(tmp_path: Path, token: str = TOKEN) -> Path:
    tmp_path.mkdir(exist_ok=True)
    config = tmp_path / "ctid.toml"
    config.write_text(f'[http]\napi_token = "{token}"\n', encoding="utf-8")
    return config


@pytest.mark.asyncio
async def test_the_cli_adds_checks_removes_and_imports_through_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running(settings_for(tmp_path)) as (floor, url):
        common = ["--config", str(cli_config(tmp_path)), "--url", url]
        optouts = service(floor).guard.optouts

        assert await run_cli("dnc", "check", "7203000104", *common) == 1
        assert "7203000104: not on the do-not-call list\n" in capsys.readouterr().out

        assert await run_cli("dnc", "add", "+1 720 300 0104", "--who", "ann", *common) == 0
        assert "+1 720 300 0104: added to the do-not-call list" in capsys.readouterr().out
        assert NUMBER in optouts

        assert await run_cli("dnc", "check", "17203000104", *common) == 0
        (line,) = cli_lines(capsys.readouterr().out)
        assert line.startswith("17203000104: on the do-not-call list since ")
        assert line.endswith("(source http:ann)")

        assert await run_cli("dnc", "add", "7203000104", *common) == 0
        assert "already on the do-not-call list" in capsys.readouterr().out

        assert await run_cli("dnc", "remove", "7203000104", "--reason", "mistake", *common) == 0
        assert "removed" in capsys.readouterr().out
        assert NUMBER not in optouts

        csv_path = tmp_path / "dnc.csv"
        csv_path.write_text("name,number\nAnn,7203000104\nBob,12ab\nCy,2125551234\n")
        assert await run_cli("dnc", "import", str(csv_path), *common) == 1
        captured = capsys.readouterr()
        assert cli_lines(captured.out) == [f"{csv_path}: 2 added, 0 already listed, 1 invalid"]
        assert captured.err == f"{csv_path}:3: not a phone number\n"
        assert len(optouts) == 2


@pytest.mark.asyncio
async def test_the_cli_says_what_is_wrong_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running(settings_for(tmp_path)) as (floor, url):
        good = ["--config", str(cli_config(tmp_path)), "--url", url]
        bad_token = ["--config", str(cli_config(tmp_path / "other", "wrong")), "--url", url]

        assert await run_cli("dnc", "add", "7203000104", *bad_token) == 2
        assert one_line(capsys).startswith("ctid: error: daemon refused (401): missing or wrong")

        assert await run_cli("dnc", "add", "12ab", *good) == 2
        assert one_line(capsys) == (
            "ctid: error: daemon refused (400): number: not a phone number (default region US)"
        )

        no_column = tmp_path / "phones.csv"
        no_column.write_text("phone\n7203000104\n")
        assert await run_cli("dnc", "import", str(no_column), *good) == 2
        assert one_line(capsys) == (
            f"ctid: error: {no_column}:1: no 'number' column in the header ['phone']"
        )

        latin1 = tmp_path / "latin1.csv"
        latin1.write_bytes(b"number,name\n7203000104,Ann\n2125551234,Ren\xe9\n")
        assert await run_cli("dnc", "import", str(latin1), *good) == 2
        assert one_line(capsys) == f"ctid: error: {latin1}:3: not UTF-8 text"

        missing = tmp_path / "missing.csv"
        assert await run_cli("dnc", "import", str(missing), *good) == 2
        assert (
            one_line(capsys) == f"ctid: error: {missing}: cannot read (No such file or directory)"
        )
        assert len(service(floor).guard.optouts) == 0


def test_the_cli_says_when_the_daemon_is_not_running(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dnc", "check", "7203000104", "--url", "http://127.0.0.1:1"]) == 2
    assert one_line(capsys).startswith("ctid: error: cannot reach the daemon at http://127.0.0.1:1")


@pytest.mark.parametrize("action", ["add", "remove", "check", "import"])
def test_each_dnc_action_has_help(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["dnc", action, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--url" in out
    assert "--config" in out


def test_dnc_help_explains_normalisation_and_exit_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["dnc", "--help"])
    out = capsys.readouterr().out
    for words in ("E.164", "default_region", "exit status", "api_token", "import"):
        assert words in out


def cli_lines(out: str) -> list[str]:
    """What the command printed, without the log lines of the daemon running in this process."""
    return [line for line in out.splitlines() if not line.startswith("20")]


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.rstrip("\n")


# --- the list behind the routes ---------------------------------------------------------


def offline_service(data_dir: Path) -> ComplianceService:
    settings = ComplianceSettings.model_validate(
        {"version": "dnc-1", "do_not_call": {"data_dir": data_dir}}
    )
    svc = ComplianceService(settings, lambda pbx, uid: None, {}, lambda: 0.0)
    svc.load()
    return svc


@pytest.mark.asyncio
async def test_who_and_why_survive_a_restart(tmp_path: Path) -> None:
    first = offline_service(tmp_path)
    first.guard.optouts.add("7203000104", 1_795_000_000.0, source="http:ann", reason="asked")
    await first.tick(1.0)
    listing = offline_service(tmp_path).guard.optouts.listing(NUMBER)
    assert listing == Listing(1_795_000_000.0, "http:ann", "asked")


@pytest.mark.asyncio
async def test_a_big_batch_is_logged_as_one_summary_line(tmp_path: Path) -> None:
    svc = offline_service(tmp_path)
    for n in range(25):
        svc.guard.optouts.add(f"212555{n:04d}", 1.0, source="http:ann")
    svc.guard.optouts.add("7203000104", 1.0, source="dialplan:pbx1")
    with structlog.testing.capture_logs() as logs:
        await svc.tick(2.0)
    changed = [entry for entry in logs if entry["event"] == "dnc_changed"]
    assert changed == [
        {"event": "dnc_changed", "log_level": "info", "op": "add", "numbers": 1,
         "source": "dialplan:pbx1"},
        {"event": "dnc_changed", "log_level": "info", "op": "add", "numbers": 25,
         "source": "http:ann"},
    ]  # fmt: skip
    assert len((tmp_path / "optouts.jsonl").read_text().splitlines()) == 26
