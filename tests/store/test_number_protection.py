"""Customer numbers at rest: a keyed hash, a masked form, and a sealed copy only with a key."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from ctid.cli import main
from ctid.compliance.numbers import normalise
from ctid.errors import ConfigError, StoreError
from ctid.privacy import mask_number
from ctid.store.engine import make_engine
from ctid.store.migrate import current_revision, downgrade_engine, head_revision, upgrade
from ctid.store.number_key import NumberHasher, load_key
from ctid.store.number_protect import NumberKeys, NumberProtector
from ctid.store.number_seal import Sealer, encryption_key
from ctid.store.rows import StoreRow
from ctid.store.schema import calls, follow_ups, metadata
from ctid.store.settings import StoreSettings
from ctid.store.upsert import write_rows
from ctid.store.writer import StoreWriter
from ctid.tracker.model import Call
from tests.store.support import (
    count,
    migrated,
    numbers_at,
    replay_through_writer,
    store_capture,
    writer_running,
)
from tests.truth import capture_names, load_truth

DAY = "2026-11-23"
KEY = b"k" * 64


def truth_numbers(name: str) -> set[str]:
    """Every customer number a capture's truth file names (calls and CDR parties)."""
    truth = load_truth(name)
    found = {call["number"] for call in truth["expected"]["per_call"] if call.get("number")}
    for cdr in truth["cdrs"]:
        found |= {cdr[k] for k in ("Source", "Destination") if len(cdr.get(k, "")) >= 7}
    return found


def numbers_of(name: str) -> dict[str, str]:
    """linkedid → number of the capture's calls."""
    return {c["linkedid"]: c["number"] for c in load_truth(name)["expected"]["per_call"]}


def protector(fernet_key: bytes | None) -> NumberProtector:
    return NumberProtector(NumberHasher(KEY, "US"), Sealer(fernet_key) if fernet_key else None)


def stored_numbers(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            columns = (calls.c.linkedid, calls.c.remote_hash, calls.c.remote_masked)
            query = sa.select(*columns, calls.c.remote_sealed)
            return {row.linkedid: row for row in connection.execute(query)}
    finally:
        engine.dispose()


def text_of_every_table(url: str) -> list[tuple[str, str]]:
    """(table, value) for every text or JSON value of every table in the database."""
    engine = make_engine(url)
    found: list[tuple[str, str]] = []
    try:
        reflected = sa.MetaData()
        reflected.reflect(engine)
        with engine.connect() as connection:
            for table in reflected.sorted_tables:
                for row in connection.execute(sa.select(table)):
                    for value in row:
                        if isinstance(value, str):
                            found.append((table.name, value))
                        elif isinstance(value, dict | list):
                            found.append((table.name, json.dumps(value)))
    finally:
        engine.dispose()
    return found


@pytest.mark.asyncio
async def test_after_replaying_every_capture_no_table_holds_a_clear_number(
    db_url: str, tmp_path: Path
) -> None:
    fernet_key = Fernet.generate_key()
    with migrated(db_url) as engine:
        writer = StoreWriter(engine, numbers=NumberKeys.fixed(protector(fernet_key)), flush_ms=20)
        async with writer_running(writer):
            for name in capture_names():
                await replay_through_writer(writer, name, name)
        assert count(engine, "calls") > 100
    everywhere = text_of_every_table(db_url)
    numbers = set().union(*(truth_numbers(name) for name in capture_names()))
    assert len(numbers) > 100
    leaks = [(table, n) for table, value in everywhere for n in numbers if n in value]
    assert leaks == []
    # ... and what is stored still says which number it was, for the key holders.
    stored = stored_numbers(db_url)
    sealer = Sealer(fernet_key)
    for linkedid, number in numbers_of("mixed_busy_period").items():
        row = stored[linkedid]
        assert row.remote_hash == NumberHasher(KEY, "US").digest(f"+1 {number}")
        assert row.remote_masked == mask_number(number)
        assert sealer.open(row.remote_sealed) == normalise(number, "US")


def test_sealed_numbers_open_with_their_key_and_with_no_other(db_url: str) -> None:
    fernet_key = Fernet.generate_key()
    with migrated(db_url) as engine:
        store_capture(engine, "mixed_busy_period", "pbx", NumberKeys.fixed(protector(fernet_key)))
    stored = stored_numbers(db_url)
    other = Sealer(Fernet.generate_key())
    for linkedid, number in numbers_of("mixed_busy_period").items():
        token = stored[linkedid].remote_sealed
        assert Sealer(fernet_key).open(token) == normalise(number, "US")
        with pytest.raises(StoreError, match="does not decrypt with the configured"):
            other.open(token)


def test_without_an_encryption_key_nothing_is_sealed(sqlite_url: str) -> None:
    with migrated(sqlite_url) as engine:
        store_capture(engine, "mixed_busy_period", "pbx", NumberKeys.fixed(protector(None)))
    stored = stored_numbers(sqlite_url).values()
    assert len(stored) == len(numbers_of("mixed_busy_period"))
    assert all(row.remote_sealed is None and row.remote_hash for row in stored)


class ThreadLog(NumberProtector):
    def __init__(self) -> None:
        super().__init__(NumberHasher(KEY, "US"), None)
        self.threads: set[int] = set()

    def columns(self, remote: str) -> dict[str, str | None]:
        self.threads.add(threading.get_ident())
        return super().columns(remote)


@pytest.mark.asyncio
async def test_the_writer_protects_numbers_in_its_worker_thread(sqlite_url: str) -> None:
    seen = ThreadLog()
    with migrated(sqlite_url) as engine:
        writer = StoreWriter(engine, numbers=NumberKeys.fixed(seen), flush_ms=10)
        async with writer_running(writer):
            await replay_through_writer(writer, "mixed_busy_period", "pbx")
    assert seen.threads  # it did run
    assert threading.get_ident() not in seen.threads  # never on the event loop's thread


def test_rows_with_a_number_are_refused_without_the_keys(sqlite_url: str) -> None:
    row = StoreRow("calls", {"pbx": "p", "linkedid": "1", "remote": "13800138000"})
    with migrated(sqlite_url) as engine, pytest.raises(StoreError, match="need the number key"):
        write_rows(engine, [row])


# --- the 0005 migration --------------------------------------------------------------------


def _calls_at_0004() -> sa.Table:
    """``calls`` as revision 0004 had it: the number in clear."""
    kept = [
        sa.Column(c.name, c.type, primary_key=c.primary_key)
        for c in calls.columns
        if not c.name.startswith("remote_")
    ]
    return sa.Table("calls", sa.MetaData(), *kept, sa.Column("remote", sa.String(64)))


def store_at_0004(url: str, name: str) -> None:
    """A capture written as ctid 0004 wrote it (clear numbers), the writer's own rows."""
    from ctid.store.capture import capture_rows
    from tests.truth import capture_streams

    upgrade(url, "0004")
    capture = capture_rows(capture_streams(name), pbx="pbx")
    rows = [row for unit in capture.units for row in unit]
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            call_values = [r.values for r in rows if r.table == "calls"]
            connection.execute(_calls_at_0004().insert(), call_values)
        write_rows(engine, [r for r in rows if r.table != "calls"])
    finally:
        engine.dispose()


def keys_for(tmp_path: Path, sealed: bool = True) -> tuple[NumberKeys, StoreSettings]:
    sealing = tmp_path / "seal.key"
    if sealed and not sealing.exists():
        sealing.write_bytes(Fernet.generate_key())
    store = StoreSettings(
        number_key_file=tmp_path / "number.key",
        number_encryption_key_file=sealing if sealed else None,
    )
    return NumberKeys.from_store(store), store


def a_follow_up_hashed_with_a_lost_key(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            at = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
            row = {
                "seat": "1005", "day": at.date(), "at": at, "number_hash": "0" * 64,
                "number_masked": "720*****04", "note": "", "source": "crm", "imported_at": at,
            }  # fmt: skip
            connection.execute(follow_ups.insert(), [row])
    finally:
        engine.dispose()


def test_0005_makes_the_key_when_nothing_was_hashed_yet(db_url: str, tmp_path: Path) -> None:
    # A store from before follow-ups and leads: no hash exists that a new key could break.
    store_at_0004(db_url, "busy")
    keys, store = keys_for(tmp_path)
    upgrade(db_url, numbers=keys)
    assert (tmp_path / "number.key").exists()
    protector = NumberKeys.from_store(store).existing()
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            stored = connection.execute(sa.select(calls.c.remote_hash)).scalars().all()
    finally:
        engine.dispose()
    wanted = {protector.columns(n)["remote_hash"] for n in numbers_of("busy").values()}
    assert set(stored) == wanted


def test_0005_refuses_without_the_key_file_and_changes_nothing(db_url: str, tmp_path: Path) -> None:
    store_at_0004(db_url, "mixed_busy_period")
    a_follow_up_hashed_with_a_lost_key(db_url)
    keys, _ = keys_for(tmp_path)
    with pytest.raises(ConfigError, match=r"migration 0005 needs the key .* no such file"):
        upgrade(db_url, numbers=keys)
    with pytest.raises(StoreError, match="needs the number key"):
        upgrade(db_url)  # no keys handed over at all
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == "0004"
        with engine.connect() as connection:
            clear = connection.execute(sa.text("SELECT remote FROM calls")).scalars().all()
        assert set(clear) == set(numbers_of("mixed_busy_period").values())
    finally:
        engine.dispose()
    assert not (tmp_path / "number.key").exists()  # never made behind the operator's back


def test_0005_converts_clear_numbers_and_a_sealed_downgrade_restores_them(
    db_url: str, tmp_path: Path
) -> None:
    store_at_0004(db_url, "mixed_busy_period")
    keys, store = keys_for(tmp_path)
    load_key(store.number_key_path)  # the key follow-ups would have been imported with
    segments_before = _count_rows(db_url, "call_segments")
    upgrade(db_url, numbers=keys)
    stored = stored_numbers(db_url)
    hasher = keys.protector().hasher
    sealer = Sealer(encryption_key(store) or b"")
    for linkedid, number in numbers_of("mixed_busy_period").items():
        row = stored[linkedid]
        assert row.remote_hash == hasher.digest(number)
        assert row.remote_masked == mask_number(number)
        assert sealer.open(row.remote_sealed) == normalise(number, "US")
    assert _count_rows(db_url, "call_segments") == segments_before  # the table was not copied
    clear = set(numbers_of("mixed_busy_period").values())
    assert not any(n in value for _, value in text_of_every_table(db_url) for n in clear)

    engine = make_engine(db_url)
    try:
        downgrade_engine(engine, "0004", keys)
        assert current_revision(engine) == "0004"
        with engine.connect() as connection:
            back = dict(connection.execute(sa.text("SELECT linkedid, remote FROM calls")).all())
    finally:
        engine.dispose()
    assert back == {i: normalise(n, "US") for i, n in numbers_of("mixed_busy_period").items()}


def _count_rows(url: str, table: str) -> int:
    engine = make_engine(url)
    try:
        return count(engine, table)
    finally:
        engine.dispose()


def test_a_downgrade_without_sealed_copies_or_the_key_is_refused(
    db_url: str, tmp_path: Path
) -> None:
    unsealed, store = keys_for(tmp_path, sealed=False)
    load_key(store.number_key_path)
    with migrated(db_url) as engine:
        store_capture(engine, "mixed_busy_period", "pbx", unsealed)
        with pytest.raises(StoreError, match=r"no encrypted copy .* cannot be put back"):
            downgrade_engine(engine, "0004", unsealed)
        assert current_revision(engine) == head_revision()  # nothing changed
    sealed_dir = tmp_path / "sealed"
    sealed_dir.mkdir()
    keys, _ = keys_for(sealed_dir)
    with migrated(db_url) as engine:
        with engine.begin() as connection:
            connection.execute(calls.delete())
        store_capture(engine, "mixed_busy_period", "pbx", keys)
        with pytest.raises(StoreError, match="without the number encryption key"):
            downgrade_engine(engine, "0004", unsealed)  # keys that cannot decrypt
        assert current_revision(engine) == head_revision()
        assert count(engine, "calls") == len(numbers_of("mixed_busy_period"))


def test_a_converted_store_reports_as_one_written_fresh(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys, store = keys_for(tmp_path)
    load_key(store.number_key_path)
    store_at_0004(db_url, "mixed_busy_period")
    upgrade(db_url, numbers=keys)
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    with migrated(fresh) as engine:
        store_capture(engine, "mixed_busy_period", "pbx", keys)
    config = tmp_path / "ctid.toml"
    config.write_text(
        '[site]\ntimezone = "Asia/Shanghai"\n[store]\n'
        f"number_key_file = {json.dumps(str(store.number_key_path))}\n",
        encoding="utf-8",
    )

    def report(url: str, *argv: str) -> str:
        assert main([*argv, "--config", str(config), "--db", url, "--date", DAY]) == 0
        return capsys.readouterr().out

    for argv in (("report", "worklog", "--format", "json"), ("report", "daily", "--format", "csv")):
        assert report(db_url, *argv) == report(fresh, *argv)
    worklog = json.loads(report(db_url, "report", "worklog", "--format", "json"))
    shown = {call["number"] for seat in worklog["seats"] for call in seat["calls"]}
    assert shown == {mask_number(n) for n in numbers_of("mixed_busy_period").values()}


# --- reading numbers back, keys ------------------------------------------------------------


def test_worklog_reveal_needs_the_encryption_key(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys, store = keys_for(tmp_path)
    with migrated(sqlite_url) as engine:
        store_capture(engine, "mixed_busy_period", "pbx", keys)
    base = f'[site]\ntimezone = "Asia/Shanghai"\n[store]\nurl = {json.dumps(sqlite_url)}\n'
    base += f"number_key_file = {json.dumps(str(store.number_key_path))}\n"
    plain, holder = tmp_path / "plain.toml", tmp_path / "holder.toml"
    plain.write_text(base, encoding="utf-8")
    sealing = json.dumps(str(store.number_encryption_key_file))
    holder.write_text(base + f"number_encryption_key_file = {sealing}\n", encoding="utf-8")
    argv = ["report", "worklog", "--date", DAY, "--format", "json", "--reveal", "--config"]

    assert main([*argv, str(plain)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "ctid: error: --reveal needs the number encryption key ([store] "
        "number_encryption_key_file or CTID_STORE__NUMBER_ENCRYPTION_KEY)"
    ]
    assert main([*argv, str(holder)]) == 0
    worklog = json.loads(capsys.readouterr().out)
    shown = {call["number"] for seat in worklog["seats"] for call in seat["calls"]}
    assert shown == {normalise(n, "US") for n in numbers_of("mixed_busy_period").values()}


def test_keygen_writes_an_owner_only_fernet_key_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "seal.key"
    assert main(["db", "keygen", str(path)]) == 0
    key = path.read_bytes().strip()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert key.decode() not in capsys.readouterr().out
    assert Sealer(key).open(Sealer(key).seal("+17102999001")) == "+17102999001"
    assert main(["db", "keygen", str(path)]) == 2
    assert "never overwrites" in capsys.readouterr().err
    assert path.read_bytes().strip() == key


def test_a_malformed_encryption_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    bad = "not-a-fernet-key-0123456789"
    with pytest.raises(ConfigError) as refused:
        encryption_key(StoreSettings(number_encryption_key=bad))  # type: ignore[arg-type]
    assert "store.number_encryption_key: not a Fernet key" in str(refused.value)
    assert bad not in str(refused.value)
    missing = tmp_path / "absent.key"
    with pytest.raises(ConfigError, match="cannot read"):
        encryption_key(StoreSettings(number_encryption_key_file=missing))


def test_stored_calls_read_back_masked(sqlite_url: str) -> None:
    from ctid.store.queries import load_calls_by_id

    with migrated(sqlite_url) as engine:
        store_capture(engine, "mixed_busy_period", "pbx", numbers_at())
        wanted = numbers_of("mixed_busy_period")
        with engine.connect() as connection:
            found: list[Call] = load_calls_by_id(connection, "pbx", list(wanted))
    assert {c.linkedid: c.remote for c in found} == {i: mask_number(n) for i, n in wanted.items()}


def test_a_world_readable_config_holding_the_encryption_key_is_warned_about(
    tmp_path: Path,
) -> None:
    from ctid.config import config_warnings

    path = tmp_path / "ctid.toml"
    key = Fernet.generate_key().decode()
    path.write_text(f'[store]\nnumber_encryption_key = "{key}"\n', encoding="utf-8")
    path.chmod(0o644)
    (warning,) = config_warnings(path)
    assert "store.number_encryption_key" in warning
    assert key not in warning
    assert metadata.tables["calls"].c.get("remote") is None


def test_the_hashers_memo_stays_bounded_and_its_digests_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The daemon's hasher lives for months and meets a new number with nearly every call.
    monkeypatch.setattr("ctid.store.number_key.DIGEST_MEMO", 3)
    hasher, fresh = NumberHasher(KEY, "US"), NumberHasher(KEY, "US")
    numbers = [f"72030001{n:02d}" for n in range(10)]
    digests = [hasher.digest(number) for number in numbers * 2]
    assert len(hasher._digests) <= 3  # the hasher's own memo
    assert digests == [fresh.digest_e164(normalise(n, "US")) for n in numbers * 2]
