from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctid.cli import main
from tests.truth import CAPTURES

QUEUE_CALL = str(CAPTURES / "inbound_queue_answered.ami.gz")


def test_help_explains_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for word in ("run", "replay", "CTID_", "talk time"):
        assert word in out


@pytest.mark.parametrize("command", ["run", "replay"])
def test_each_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--config" in capsys.readouterr().out


def test_bad_config_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ctid.toml"
    config.write_text('[[pbx]]\nname = "pbx1"\nport = 99999\n')
    assert main(["replay", "--config", str(config), QUEUE_CALL]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "pbx[0].port" in err
    assert str(config) in err


def test_missing_capture_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "/nonexistent/x.ami"]) == 2
    assert capsys.readouterr().err.strip() == (
        "ctid: error: /nonexistent/x.ami: cannot read (No such file or directory)"
    )


def test_replay_json_schema_and_masked_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--format", "json", QUEUE_CALL]) == 0
    document = json.loads(capsys.readouterr().out)
    seat = document["seats"]["1002"]
    assert {
        "calls",
        "outbound",
        "inbound",
        "answered",
        "effective",
        "talk_seconds",
        "hold_seconds",
        "faxes",
    } <= set(seat)
    assert (seat["inbound"], seat["answered"]) == (1, 1)
    (call,) = document["calls"]
    assert call["remote"] == "138******00"
    assert call["direction"] == "inbound"
    assert call["outcome"] == "answered"
    assert call["segments"] == [{"seat": "1002", "talk_seconds": 14.999, "hold_seconds": 0.0}]
    assert call["started_at"].endswith("+00:00")


def test_replay_shows_numbers_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--format", "json", "--show-numbers", QUEUE_CALL]) == 0
    assert json.loads(capsys.readouterr().out)["calls"][0]["remote"] == "13800138000"


def test_replay_table_and_csv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", QUEUE_CALL]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["seat", "name", "calls"]
    assert table[-1].split()[0] == "TOTAL"
    assert main(["replay", "--format", "csv", QUEUE_CALL]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("seat,calls,outbound,inbound")
    assert rows[1].startswith("1002,1,0,1,")


def test_replay_in_site_time_zone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ctid.toml"
    config.write_text('[site]\ntimezone = "Asia/Shanghai"\n')
    assert main(["replay", "--config", str(config), "--format", "json", QUEUE_CALL]) == 0
    assert json.loads(capsys.readouterr().out)["calls"][0]["started_at"].endswith("+08:00")
