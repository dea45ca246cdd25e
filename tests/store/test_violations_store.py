"""Compliance violations in the store: a DNC hang-up over real TCP leaves its row, and
``ctid violations`` prints it."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from ctid.ami.capture import load_capture
from ctid.ami.server import AmiReplayServer
from ctid.cli import main
from ctid.compliance import Action, Decision, Mode, Rule
from ctid.config import Settings
from ctid.daemon import run_daemon
from ctid.store.upsert import write_rows
from ctid.store.violations import violation_row
from tests.store.audit_support import rows_when
from tests.store.support import count, migrated
from tests.test_compliance_tcp import BUSY_NUMBER, BUSY_SEAT_CHANNEL
from tests.truth import CAPTURES

MASKED = "720*****04"
DAY = "2026-11-23"  # busy.ami was recorded at 10:30 UTC that day


def compliance_policy(tmp_path: Path) -> Path:
    (tmp_path / "optouts.jsonl").write_text(
        f'{{"op": "add", "number": "+1{BUSY_NUMBER}", "ts": 0, "source": "t"}}\n'
    )
    policy = tmp_path / "compliance.toml"
    policy.write_text(
        'version = "w1"\n[calling_hours]\nmode = "off"\n[frequency]\nmode = "off"\n'
        f'[do_not_call]\nmode = "enforce"\ndata_dir = "{tmp_path}"\n'
    )
    return policy


async def run_until_stored(
    db_url: str, tmp_path: Path, sealing_key: str | None = None
) -> list[dict[str, Any]]:
    """The daemon against the busy capture until the violation and the call are stored."""
    store = {"url": db_url, "data_dir": str(tmp_path / "var"), "flush_ms": 20}
    if sealing_key is not None:
        store["number_encryption_key"] = sealing_key
    async with AmiReplayServer(load_capture(CAPTURES / "busy.ami.gz"), secret="s") as server:
        settings = Settings.model_validate(
            {
                "pbx": [{"name": "p1", "port": server.port, "secret": "s", "auth": "plain"}],
                "http": {"enabled": False},
                "compliance": compliance_policy(tmp_path),
                "seats": [{"id": "1005", "team": "outbound"}],
                "store": store,
            }
        )
        task = asyncio.create_task(run_daemon(settings, handle_signals=False))
        try:
            stored = await rows_when(db_url, "violations", lambda found: bool(found))
            await rows_when(db_url, "calls", lambda found: bool(found))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    (hangup,) = [a for a in server.actions_received if a.name == "Hangup"]
    assert hangup.get("Channel") == BUSY_SEAT_CHANNEL
    return stored


def cli(db_url: str, *argv: str) -> list[str]:
    return ["violations", "--db", db_url, "--date", DAY, *argv]


@pytest.mark.asyncio
async def test_an_enforced_dnc_dial_leaves_a_masked_row_with_the_hangup_outcome(
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = Fernet.generate_key().decode()
    (row,) = await run_until_stored(db_url, tmp_path, sealing_key=key)
    assert (row["pbx"], row["seat"], row["rule"], row["severity"]) == (
        "p1",
        "1005",
        "do_not_call",
        "enforce",
    )
    assert row["at"].date().isoformat() == DAY
    detail = row["detail"]
    assert (detail["team"], detail["number"], detail["mode"], detail["action"]) == (
        "outbound",
        MASKED,
        "enforce",
        "hangup",
    )
    assert detail["policy_version"] == "w1"
    assert detail["channel"] == BUSY_SEAT_CHANNEL
    assert (detail["outcome"]["ami_action"], detail["outcome"]["ok"]) == ("Hangup", True)
    assert detail["outcome"]["detail"] == "Channel Hungup"
    assert BUSY_NUMBER not in json.dumps(row, default=str)
    capsys.readouterr()  # the daemon's log lines

    assert await asyncio.to_thread(main, cli(db_url, "--format", "json")) == 0
    (printed,) = json.loads(capsys.readouterr().out)["violations"]
    assert (printed["rule"], printed["seat"], printed["team"]) == (
        "do_not_call",
        "1005",
        "outbound",
    )
    assert (printed["number"], printed["action"], printed["policy_version"]) == (
        MASKED,
        "hangup",
        "w1",
    )
    assert printed["outcome"]["ok"] is True

    assert await asyncio.to_thread(main, cli(db_url, "--format", "csv", "--seat", "1005")) == 0
    (record,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert (record["number"], record["outcome"]) == (MASKED, "ok: Channel Hungup")

    assert await asyncio.to_thread(main, cli(db_url)) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split()[:5] == ["time", "rule", "mode", "action", "outcome"]
    assert "do_not_call" in line
    assert "ok: Channel Hungup" in line
    assert MASKED in line

    assert await asyncio.to_thread(main, cli(db_url, "--rule", "frequency")) == 0
    assert capsys.readouterr().out == f"no violations on {DAY}\n"
    assert await asyncio.to_thread(main, cli(db_url, "--seat", "1001", "--format", "json")) == 0
    assert json.loads(capsys.readouterr().out)["violations"] == []

    # Where numbers may be shown, the full one is the stored call's, decrypted: only with the
    # encryption key (here from the environment), refused in one line without it.
    show = cli(db_url, "--format", "json", "--show-numbers")
    assert await asyncio.to_thread(main, show) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "--show-numbers needs the number encryption key "
            "([store] number_encryption_key_file or CTID_STORE__NUMBER_ENCRYPTION_KEY)"
        )
    )
    monkeypatch.setenv("CTID_STORE__NUMBER_ENCRYPTION_KEY", key)
    assert await asyncio.to_thread(main, show) == 0
    (shown,) = json.loads(capsys.readouterr().out)["violations"]
    assert shown["number"] == "+1" + BUSY_NUMBER  # the E.164 form is what is sealed


def test_a_violation_sent_twice_is_stored_once(db_url: str) -> None:
    decision = Decision(
        Rule.CALLING_HOURS, Mode.OBSERVE, Action.NONE, "p1", 1795429860.25, "w1", "1005",
        MASKED, "outside the site's windows", "L1", "U1", None,
    )  # fmt: skip
    with migrated(db_url) as engine:
        write_rows(engine, [violation_row(decision, None, "outbound")])
        write_rows(engine, [violation_row(decision, None, "outbound")])  # e.g. from the spool
        assert count(engine, "violations") == 1


def test_violations_without_a_database_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["violations", "--db", missing]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ctid: error: no database at")
    assert err.count("\n") == 1
