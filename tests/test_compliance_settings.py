"""Policy files, CSV imports and the opt-out journal: precise errors, nothing lost on restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctid.compliance import (
    ComplianceService,
    ComplianceSettings,
    Mode,
    OptOutJournal,
    OptOutList,
    load_compliance,
)
from ctid.compliance.optout import JournalEntry, read_csv
from ctid.compliance.settings import DoNotCallSettings
from ctid.errors import PolicyError

EXAMPLE = Path(__file__).parent.parent / "examples" / "compliance.toml"


def test_the_example_policy_loads() -> None:
    settings = load_compliance(EXAMPLE)
    assert settings.calling_hours.mode is Mode.ENFORCE
    assert settings.calling_hours.site_windows == ["09:20-11:45", "13:30-17:30"]
    assert settings.frequency.site.per_day == 3
    assert settings.disclosure.within_seconds == 15


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('version = "1"\n[calling_hours]\nsite_windows = ["09:00-12:00", "14:00-13:00"]\n',
         "calling_hours.site_windows: Value error, window '14:00-13:00' ends before it starts"),
        ('version = "1"\n[frequency.site]\nper_day = 0\n',
         "frequency.site.per_day: Input should be greater than or equal to 1"),
        ('version = "1"\n[do_not_call]\nmode = "block"\n',
         "do_not_call.mode: Input should be 'off', 'observe', 'warn' or 'enforce'"),
        ('version = "1"\n[calling_hours]\nprefix_zones = { "7" = "Mars/Olympus" }\n',
         "calling_hours.prefix_zones: Value error, unknown time zone 'Mars/Olympus'"),
        ('version = "1"\n[disclosure]\nwithin = 15\n',
         "disclosure.within: Extra inputs are not permitted"),
        ("[disclosure]\n", "version: Field required"),
    ],
)  # fmt: skip
def test_a_bad_policy_is_one_error_naming_file_and_key(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(body)
    with pytest.raises(PolicyError) as caught:
        load_compliance(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_invalid_toml_and_a_missing_file_are_policy_errors(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("version = \n")
    with pytest.raises(PolicyError, match="invalid TOML"):
        load_compliance(path)
    with pytest.raises(PolicyError, match="no such policy file"):
        load_compliance(tmp_path / "missing.toml")


# --- CSV import ------------------------------------------------------------------------


def test_csv_import_normalises_numbers(tmp_path: Path) -> None:
    path = tmp_path / "dnc.csv"
    path.write_text("name,number\nAnn,7203000104\n\nBob,+1 (212) 555-1234\n")
    optouts = OptOutList("US")
    assert optouts.import_csv(path, 0.0) == 2
    assert "+17203000104" in optouts
    assert "2125551234" in optouts


def test_a_bad_csv_row_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "dnc.csv"
    path.write_text("name,number\nAnn,7203000104\nBob,12ab\n")
    with pytest.raises(PolicyError) as caught:
        read_csv(path, "US")
    assert str(caught.value) == f"{path}:3: column 2 (number): '12ab' is not a phone number"


def test_a_csv_without_a_number_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dnc.csv"
    path.write_text("phone\n7203000104\n")
    with pytest.raises(PolicyError, match=r"dnc.csv:1: no 'number' column"):
        read_csv(path, "US")


# --- journal ---------------------------------------------------------------------------


def service(data_dir: Path) -> ComplianceService:
    settings = ComplianceSettings(version="1", do_not_call=DoNotCallSettings(data_dir=data_dir))
    return ComplianceService(settings, lambda pbx, uid: None, {}, lambda: 0.0)


@pytest.mark.asyncio
async def test_opt_outs_survive_a_restart(tmp_path: Path) -> None:
    first = service(tmp_path)
    first.load()
    first.guard.optouts.add("7203000104", 1.0, source="dialplan:pbx")
    first.guard.optouts.add("2125551234", 2.0)
    first.guard.optouts.remove("2125551234", 3.0)
    await first.tick(10.0)
    second = service(tmp_path)
    second.load()
    assert "7203000104" in second.guard.optouts
    assert "2125551234" not in second.guard.optouts
    assert len(second.guard.optouts) == 1


@pytest.mark.asyncio
async def test_a_failed_journal_write_is_retried_on_the_next_tick(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")  # a file where the data dir should be: mkdir fails
    svc = service(blocked)
    svc.guard.optouts.add("7203000104", 1.0)
    await svc.tick(10.0)
    assert len(svc.guard.optouts.drain()) == 1  # still pending, nothing lost


def test_a_journal_cut_short_by_a_crash_keeps_every_complete_line(tmp_path: Path) -> None:
    journal = OptOutJournal(tmp_path)
    journal.append([JournalEntry("add", "+17203000104", 1.0, "api")])
    with journal.path.open("a") as handle:
        handle.write('{"op": "add", "numb')
    assert [e.number for e in journal.load()] == ["+17203000104"]
