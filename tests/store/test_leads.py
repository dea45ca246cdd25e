"""Lead lists and their coverage, on the stored mixed capture (2026-11-23, Asia/Shanghai).

Expected coverage is counted from the truth file: a lead is dialled when the lab placed an
outbound call to it, answered when that call's disposition is ANSWERED; per team by the seat
that placed it (truth's ``calls[].seat``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ctid.cli import main
from tests.store.audit_support import rows
from tests.store.support import migrated, numbers_at, store_capture
from tests.truth import load_truth

TRUTH = load_truth("mixed_busy_period")
CALLS = TRUTH["expected"]["per_call"]
OUTBOUND = [c for c in CALLS if c["direction"] == "outbound"]
UNANSWERED = [c["number"] for c in OUTBOUND if c["disposition"] != "ANSWERED"]
DIALLER = {c["peer"]: c["seat"] for c in TRUTH["calls"] if c["direction"] == "outbound"}
TEAM = {"1006": "team-a", "1007": "team-a", "1008": "team-b", "1009": "team-b", "1010": "team-b"}
INBOUND = [c["number"] for c in CALLS if c["direction"] == "inbound"][:3]
NEVER_CALLED = ["3035550199", "3035550198"]
# Every other outbound number, and every unanswered one; inbound callers; numbers never seen.
LEADS = sorted({c["number"] for c in OUTBOUND[::2]} | set(UNANSWERED)) + INBOUND + NEVER_CALLED


def crm_format(number: str) -> str:
    national = number[-10:]
    return f"+1 {national[:3]}-{national[3:6]}-{national[6:]}"


def expected_coverage() -> dict[str, tuple[int, int]]:
    """Per team (and "all teams"): leads dialled, leads answered."""
    dialled: dict[str, set[str]] = {}
    answered: dict[str, set[str]] = {}
    for call in OUTBOUND:
        if call["number"] not in LEADS:
            continue
        for group in ("all teams", TEAM[DIALLER[call["number"]]]):
            dialled.setdefault(group, set()).add(call["number"])
            if call["disposition"] == "ANSWERED":
                answered.setdefault(group, set()).add(call["number"])
    return {g: (len(dialled[g]), len(answered.get(g, set()))) for g in dialled}


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Path:
    with migrated(db_url) as engine:
        store_capture(engine, "mixed_busy_period", "pbx", numbers_at(tmp_path / "number.key"))
    path = tmp_path / "ctid.toml"
    seats = "".join(f'[[seats]]\nid = "{s}"\nteam = "{t}"\n' for s, t in TEAM.items())
    path.write_text(
        f'[site]\ntimezone = "Asia/Shanghai"\n[store]\nurl = {json.dumps(db_url)}\n'
        f"number_key_file = {json.dumps(str(tmp_path / 'number.key'))}\n"
        'number_region = "US"\n' + seats,
        encoding="utf-8",
    )
    return path


def lead_file(path: Path, numbers: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "number"])
        writer.writerows([f"lead {i}", crm_format(n)] for i, n in enumerate(numbers))
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def coverage(capsys: pytest.CaptureFixture[str], config: Path, *span: str) -> dict[str, object]:
    code, out, err = cli(
        capsys, "leads", "coverage", "spring", "--config", str(config), *span, "--format", "json"
    )
    assert code == 0, err
    document: dict[str, object] = json.loads(out)
    return document


def test_coverage_counts_leads_dialled_and_answered_per_team(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = lead_file(tmp_path / "leads.csv", [*LEADS, LEADS[0]])  # one number twice
    code, out, err = cli(capsys, "leads", "import", "spring", str(path), "--config", str(config))
    assert code == 0, err
    assert out.strip() == f"{path}: {len(LEADS)} numbers added to 'spring', 1 duplicates"

    document = coverage(capsys, config, "--from", "2026-11-23", "--to", "2026-11-23")
    want = expected_coverage()
    assert UNANSWERED
    assert want["all teams"][0] > want["all teams"][1] > 0
    assert document["numbers"] == len(LEADS)
    assert (document["dialled"], document["answered"]) == want["all teams"]
    assert document["dialled_share"] == round(want["all teams"][0] / len(LEADS), 6)
    assert document["answered_share"] == round(want["all teams"][1] / len(LEADS), 6)
    teams = document["teams"]
    assert isinstance(teams, list)
    assert {t["name"]: (t["dialled"], t["answered"]) for t in teams} == {
        g: v for g, v in want.items() if g != "all teams"
    }

    table = cli(
        capsys, "leads", "coverage", "spring", "--config", str(config), "--to", "2026-11-23"
    )
    assert table[0] == 0
    dialled, answered = want["all teams"]
    assert f"{dialled / len(LEADS) * 100:.1f} %" in table[1]
    assert f"{answered / len(LEADS) * 100:.1f} %" in table[1]


def test_days_without_calls_cover_nothing(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = lead_file(tmp_path / "leads.csv", LEADS)
    assert cli(capsys, "leads", "import", "spring", str(path), "--config", str(config))[0] == 0
    document = coverage(capsys, config, "--from", "2026-11-24", "--to", "2026-11-30")
    assert (document["numbers"], document["dialled"], document["answered"]) == (len(LEADS), 0, 0)
    assert document["teams"] == []


def test_importing_a_list_again_adds_only_new_numbers(
    config: Path, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = lead_file(tmp_path / "a.csv", LEADS[:5])
    assert cli(capsys, "leads", "import", "spring", str(first), "--config", str(config))[0] == 0
    again = lead_file(tmp_path / "b.csv", LEADS[:7])
    code, out, _ = cli(capsys, "leads", "import", "spring", str(again), "--config", str(config))
    assert code == 0
    assert out.strip() == f"{again}: 2 numbers added to 'spring', 5 duplicates"
    (stored,) = rows(db_url, "lead_lists")
    assert (stored["name"], stored["rows"]) == ("spring", 7)
    held = rows(db_url, "leads")
    assert len(held) == 7
    assert not any(n in str(r) for r in held for n in LEADS)


def test_a_bad_number_names_the_line_and_nothing_is_stored(
    config: Path, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,number\na,+1 710-299-9001\nb,12\n", encoding="utf-8")
    code, _, err = cli(capsys, "leads", "import", "spring", str(path), "--config", str(config))
    assert code == 2
    assert err.strip() == f"ctid: error: {path}:3: column 2 (number): not a phone number"
    assert rows(db_url, "lead_lists") == []
    code, _, err = cli(capsys, "leads", "coverage", "spring", "--config", str(config))
    assert code == 2
    assert "no lead list 'spring' (known: none)" in err
