"""Follow-up claims checked against stored calls: the mixed capture (Monday 2026-11-23,
Asia/Shanghai) is stored, then claims built from its truth file are imported and reported on.

Claims write numbers the way a CRM might (``+1 (710) 299-9001``) while the PBX stored
``7102999001``: both normalise to the same E.164 number (region US), so they match.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from ctid.cli import main
from ctid.privacy import mask_number
from ctid.store.engine import make_engine
from ctid.store.migrate import current_revision, head_revision, upgrade
from ctid.store.schema import metadata
from tests.store.audit_support import daemon_settings, rows, rows_when
from tests.store.support import count, migrated, numbers_at, store_capture
from tests.store.test_migration_0002 import downgrade
from tests.test_api import AUTH, every_day_policy
from tests.test_daemon import running
from tests.truth import load_truth

ZONE = ZoneInfo("Asia/Shanghai")
DAY = "2026-11-23"
THRESHOLD = 30.0
TRUTH = load_truth("mixed_busy_period")
CALLS = TRUTH["expected"]["per_call"]
STARTS = {c["peer"]: c["t_start"] for c in TRUTH["calls"]}
"""When the lab placed each call (number → epoch seconds)."""
NEVER_CALLED = "3035550199"


def crm_format(number: str) -> str:
    """How a CRM writes the number: +1, area code in brackets, dashes (the PBX has ten
    digits, or eleven with the trunk prefix 1)."""
    national = number[-10:]
    return f"+1 ({national[:3]}) {national[3:6]}-{national[6:]}"


def e164(number: str) -> str:
    return f"+1{number[-10:]}"


def local_time(epoch: float) -> str:
    """Naive ISO 8601 local site time (the CSV's usual form)."""
    return dt.datetime.fromtimestamp(epoch, ZONE).replace(tzinfo=None).isoformat()


def talk_of(call: dict[str, Any], seat: str) -> float:
    return float(sum(s["talk_seconds"] for s in call["segments"] if s["seat"] == seat))


def pick(direction: str, low: float, high: float) -> dict[str, Any]:
    """The first answered call of one seat whose talk is in [low, high)."""
    call: dict[str, Any]
    for call in CALLS:
        seats = {s["seat"] for s in call["segments"]}
        single = call["direction"] == direction and len(seats) == 1
        if single and low <= talk_of(call, next(iter(seats))) < high:
            return call
    raise AssertionError(f"no {direction} call with talk in [{low}, {high})")


LONG_OUT = pick("outbound", THRESHOLD + 1, 1e9)  # 7102999001, seat 1007, 59 s
LONG_IN = pick("inbound", THRESHOLD + 1, 1e9)  # 13900250002, seat 1005, 68 s
SHORT = pick("outbound", 0.5, THRESHOLD - 1)  # 7102001002, seat 1008, 1 s
BUSY = next(c for c in CALLS if c["disposition"] == "BUSY")  # 7205000004, dialled by 1010
BUSY_SEAT = next(c["seat"] for c in TRUTH["calls"] if c["peer"] == BUSY["number"])
SEAT_OF = {id(c): c["segments"][0]["seat"] for c in (LONG_OUT, LONG_IN, SHORT)}
OTHER_SEAT = "1006"
assert all(s["seat"] != OTHER_SEAT for s in LONG_IN["segments"])

CLAIMS = [
    # seat, number, time, class, note, expected reason (None: verified)
    (SEAT_OF[id(LONG_OUT)], LONG_OUT["number"], "A", None),
    (SEAT_OF[id(LONG_IN)], LONG_IN["number"], "B", None),
    (SEAT_OF[id(SHORT)], SHORT["number"], "", "call too short"),
    (BUSY_SEAT, BUSY["number"], "", "not answered"),
    (OTHER_SEAT, LONG_IN["number"], "A", "other seat's call"),
    (OTHER_SEAT, NEVER_CALLED, "B", "no call"),
]


def claim_rows() -> list[list[str]]:
    out = []
    for seat, number, klass, _ in CLAIMS:
        at = STARTS.get(number, STARTS[LONG_OUT["number"]])
        out.append([seat, crm_format(number), local_time(at), klass, f"note for {seat}"])
    return out


def write_csv(path: Path, body: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["seat", "number", "time", "class", "note"])
        writer.writerows(body)
    return path


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Path:
    with migrated(db_url) as engine:
        keys = numbers_at(tmp_path / "keys" / "number.key")
        store_capture(engine, "mixed_busy_period", "pbx", keys)
    path = tmp_path / "ctid.toml"
    path.write_text(
        f'[site]\ntimezone = "Asia/Shanghai"\neffective_call_seconds = {THRESHOLD}\n'
        f"[store]\nurl = {json.dumps(db_url)}\n"
        f"number_key_file = {json.dumps(str(tmp_path / 'keys' / 'number.key'))}\n"
        '[[seats]]\nid = "1006"\nteam = "team-out"\n',
        encoding="utf-8",
    )
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def report(capsys: pytest.CaptureFixture[str], config: Path, fmt: str = "json") -> str:
    code, out, err = cli(
        capsys, "followups", "report", "--config", str(config), "--date", DAY, "--format", fmt
    )
    assert code == 0, err
    return out


def test_claims_are_verified_only_by_the_seats_own_long_enough_answered_call(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claims = write_csv(tmp_path / "crm.csv", claim_rows())
    code, out, err = cli(capsys, "followups", "import", str(claims), "--config", str(config))
    assert code == 0, err
    assert out.strip() == f"{claims}: {len(CLAIMS)} follow-ups added, 0 duplicates"

    document = json.loads(report(capsys, config))
    seats = {s["seat"]: s for s in document["seats"]}
    for seat, number, klass, reason in CLAIMS:
        entry = seats[seat]
        unverified = {u["number"]: u for u in entry["unverified"]}
        masked = mask_number(e164(number))
        if reason is None:
            assert masked not in unverified, (seat, number)
        else:
            assert unverified[masked]["reason"] == reason, (seat, number)
            assert unverified[masked]["class"] == (klass or None)
    expected: dict[str, tuple[int, int]] = {}
    for seat, _, _, reason in CLAIMS:
        claimed, verified = expected.get(seat, (0, 0))
        expected[seat] = (claimed + 1, verified + (reason is None))
    assert {s: (e["claimed"], e["verified"]) for s, e in seats.items()} == expected
    assert seats[OTHER_SEAT]["team"] == "team-out"

    table = report(capsys, config, "table")
    assert "other seat's call" in table
    assert mask_number(e164(NEVER_CALLED)) in table
    lines = list(csv.DictReader(report(capsys, config, "csv").splitlines()))
    assert sorted(line["verified"] for line in lines) == ["false"] * 4 + ["true"] * 2


def test_the_store_keeps_a_keyed_hash_and_a_masked_number_never_the_number(
    config: Path, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claims = write_csv(tmp_path / "crm.csv", claim_rows())
    assert cli(capsys, "followups", "import", str(claims), "--config", str(config))[0] == 0
    stored = rows(db_url, "follow_ups")
    assert len(stored) == len(CLAIMS)
    digits = {number for _, number, _, _ in CLAIMS}
    for row in stored:
        text = " ".join(str(value) for value in row.values())
        assert not any(d in text for d in digits), row
        assert len(row["number_hash"]) == 64
    assert {r["number_masked"] for r in stored} == {mask_number(e164(n)) for n in digits}
    first = next(r for r in stored if r["seat"] == SEAT_OF[id(LONG_OUT)])
    assert first["day"] == dt.date.fromisoformat(DAY)
    assert first["at"].timestamp() == pytest.approx(STARTS[LONG_OUT["number"]], abs=1e-6)
    assert (first["class"], first["source"]) == ("A", "csv:crm.csv")
    key = tmp_path / "keys" / "number.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert len(key.read_text().strip()) == 64


def test_importing_the_same_file_again_adds_nothing(
    config: Path, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claims = write_csv(tmp_path / "crm.csv", claim_rows())
    assert cli(capsys, "followups", "import", str(claims), "--config", str(config))[0] == 0
    before = report(capsys, config)
    # The same export again, plus one new claim given with an explicit offset (UTC).
    new_at = dt.datetime.fromtimestamp(STARTS[SHORT["number"]], dt.UTC).isoformat()
    again = write_csv(
        tmp_path / "crm2.csv", [*claim_rows(), ["1009", crm_format(NEVER_CALLED), new_at, "", ""]]
    )
    code, out, _ = cli(capsys, "followups", "import", str(again), "--config", str(config))
    assert code == 0
    assert out.strip() == f"{again}: 1 follow-ups added, {len(CLAIMS)} duplicates"
    with migrated(str(db_url)) as engine:
        assert count(engine, "follow_ups") == len(CLAIMS) + 1
    after = json.loads(report(capsys, config))
    assert [s for s in after["seats"] if s["seat"] != "1009"] == json.loads(before)["seats"]


@pytest.mark.parametrize(
    ("bad_row", "where"),
    [
        (["1001", "+1 710 299 9001", "23/11/2026 10:00", "A", ""], "column 3 (time)"),
        (["1001", "not-a-number", "2026-11-23T10:00:00", "A", ""], "column 2 (number)"),
        (["1001", "+1 710 299 9001", "2026-11-23T10:00:00", "C", ""], "column 4 (class)"),
        (["1001", "+1 710 299 9001", "2026-11-23", "A", ""], "column 3 (time)"),
    ],
)
def test_a_malformed_row_names_file_line_and_column_and_nothing_is_stored(
    bad_row: list[str],
    where: str,
    config: Path,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = claim_rows()
    path = write_csv(tmp_path / "bad.csv", [good[0], good[1], bad_row, good[2]])
    code, out, err = cli(capsys, "followups", "import", str(path), "--config", str(config))
    assert code == 2
    assert out == ""
    assert err.startswith(f"ctid: error: {path}:4: {where}: ")  # header is line 1
    assert "7102999001" not in err
    with migrated(db_url) as engine:
        assert count(engine, "follow_ups") == 0


def test_a_file_without_the_required_columns_is_refused(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "short.csv"
    path.write_text("seat,phone,time\n1001,7102999001,2026-11-23T10:00\n", encoding="utf-8")
    code, _, err = cli(capsys, "followups", "import", str(path), "--config", str(config))
    assert code == 2
    assert f"{path}:1: the header lacks column(s) number" in err


@pytest.mark.asyncio
async def test_http_post_needs_the_token_and_stores_claims_once(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = {"effective_call_seconds": 10}  # the demo call talks 12 s
    settings = daemon_settings(db_url, tmp_path, every_day_policy(tmp_path), site=site)
    async with running(settings) as (_floor, url):
        (call,) = await rows_when(db_url, "calls", lambda found: len(found) == 1)
        (played,) = load_truth("answered_customer_hangup")["expected"]["per_call"]
        assert call["remote_masked"] == mask_number(played["number"])  # never in clear
        claim = {
            "seat": call["seat"],
            "number": crm_format(played["number"]),
            "time": call["started_at"].isoformat(),
            "class": "A",
        }
        async with (
            aiohttp.ClientSession() as anonymous,
            anonymous.post(f"{url}/api/followups", json=[claim]) as response,
        ):
            assert response.status == 401
        async with aiohttp.ClientSession(headers=AUTH) as http:
            for expected in ({"added": 1, "duplicates": 0}, {"added": 0, "duplicates": 1}):
                async with http.post(f"{url}/api/followups", json=[claim]) as response:
                    assert response.status == 200, await response.text()
                    assert await response.json() == expected
            bad = [claim, claim | {"number": "12"}]
            async with http.post(f"{url}/api/followups", json=bad) as response:
                assert response.status == 400
                assert (await response.json())["error"] == "1.number: not a phone number"
            async with http.post(f"{url}/api/followups", json=[claim | {"class": "Z"}]) as reply:
                assert reply.status == 400
                assert (await reply.json())["error"].startswith("0.class: ")
            async with http.post(f"{url}/api/followups", data=b"[" * 600_000) as response:
                assert response.status == 413
    assert len(rows(db_url, "follow_ups")) == 1
    config = tmp_path / "ctid.toml"
    config.write_text(
        f"[site]\neffective_call_seconds = 10\n[store]\nurl = {json.dumps(db_url)}\n"
        f"number_key_file = {json.dumps(str(settings.store.number_key_path))}\n",
        encoding="utf-8",
    )
    day = call["started_at"].date().isoformat()  # the daemon's site is UTC
    capsys.readouterr()  # the daemon's log lines
    code, out, err = cli(
        capsys, "followups", "report", "--config", str(config), "--date", day, "--format", "json"
    )
    assert code == 0, err
    (seat,) = json.loads(out)["seats"]
    assert (seat["seat"], seat["claimed"], seat["verified"]) == (call["seat"], 1, 1)


def test_with_another_key_no_claim_matches_a_call(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The calls were stored hashed with the configured key; claims imported with another
    # key (a lost and recreated key file) hash differently and match none of them.
    claims = write_csv(tmp_path / "crm.csv", claim_rows())
    other = tmp_path / "other.toml"
    other_key = json.dumps(str(tmp_path / "other.key"))
    other.write_text(
        config.read_text(encoding="utf-8").replace(
            json.dumps(str(tmp_path / "keys" / "number.key")), other_key
        ),
        encoding="utf-8",
    )
    assert cli(capsys, "followups", "import", str(claims), "--config", str(other))[0] == 0
    document = json.loads(report(capsys, config))
    reasons = {u["reason"] for s in document["seats"] for u in s["unverified"]}
    assert reasons == {"no call"}
    assert sum(s["verified"] for s in document["seats"]) == 0


def test_0003_adds_the_three_tables_and_its_downgrade_removes_them(db_url: str) -> None:
    new = {"follow_ups", "lead_lists", "leads"}
    upgrade(db_url, "0002")
    engine = make_engine(db_url)
    try:
        assert not new & set(inspect(engine).get_table_names())
        upgrade(db_url)
        assert current_revision(engine) == head_revision()
        assert new <= set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        (unique,) = inspect(engine).get_unique_constraints("follow_ups")
        assert unique["column_names"] == ["seat", "at", "number_hash"]
        downgrade(engine, "0002")
        assert current_revision(engine) == "0002"
        assert not new & set(inspect(engine).get_table_names())
        assert "calls" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_key_file_too_short_to_be_a_key_is_refused(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "keys" / "number.key"  # made when the fixture stored the calls
    key.write_text("secret\n", encoding="utf-8")
    claims = write_csv(tmp_path / "crm.csv", claim_rows())
    code, _, err = cli(capsys, "followups", "import", str(claims), "--config", str(config))
    assert code == 2
    assert f"store.number_key_file {key}: a key needs at least 32 characters" in err
    assert key.read_text(encoding="utf-8") == "secret\n"
