"""``ctid report today`` without capture files: the running daemon's report, over its API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.test_api import daemon_settings, every_day_policy, run_cli
from tests.test_daemon import running
from tests.truth import load_truth, seat_expectations


async def _report(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The command's output, without the in-process daemon's log lines around it."""
    capsys.readouterr()
    assert await run_cli("report", "today", *argv) == 0
    out = capsys.readouterr().out
    start = out.index("{\n") if "--format" in argv else out.index("quota report as of ")
    return out[start:]


def _document(text: str) -> dict[str, Any]:
    document, _ = json.JSONDecoder().raw_decode(text)
    assert isinstance(document, dict)
    return document


@pytest.mark.asyncio
async def test_the_daemons_report_has_the_talk_time_it_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    talk = seat_expectations(load_truth("answered_customer_hangup"))["1001"].talk_seconds
    settings = daemon_settings(every_day_policy(tmp_path))
    async with running(settings) as (_floor, url):
        seats: dict[str, dict[str, object]] = {}
        async with asyncio.timeout(20):
            while not seats.get("1001", {}).get("talk_minutes"):
                document = _document(await _report(capsys, "--url", url, "--format", "json"))
                seats = {row["seat"]: row for row in document["seats"]}
                await asyncio.sleep(0.1)
        table = await _report(capsys, "--url", url)
    assert seats["1001"]["talk_minutes"] == round(talk / 60, 2)
    # Standard tier: 100 talk minutes a day.
    assert seats["1001"]["attainment_talk_minutes"] == pytest.approx(talk / 60 / 100, abs=1e-4)
    assert seats["1002"]["talk_minutes"] == 0
    assert table.startswith("quota report as of ")
    row = next(line for line in table.splitlines() if " 1001 " in f" {line} ")
    assert f"{talk / 60:.1f}" in row
    assert "team team-a" in table


@pytest.mark.asyncio
async def test_without_a_policy_the_daemon_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = daemon_settings(every_day_policy(tmp_path)).model_copy(
        update={"policy": daemon_settings(every_day_policy(tmp_path)).policy.model_copy(
            update={"file": None}
        )}
    )  # fmt: skip
    async with running(settings) as (_floor, url):
        assert await run_cli("report", "today", "--url", url) == 2
    err = capsys.readouterr().err
    assert err == "ctid: error: daemon refused (409): no quota policy loaded: set policy.file\n"


def test_capture_options_without_files_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from ctid.cli import main

    assert main(["report", "today", "--at", "2026-11-23T17:50+08:00"]) == 2
    err = capsys.readouterr().err
    assert err == "ctid: error: --at needs capture FILEs (the daemon uses its own)\n"
