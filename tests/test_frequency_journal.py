"""Repeat-dial counts survive a restart: the frequency journal, its hash key and its compaction."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest
import structlog

from ctid.compliance import ComplianceService, ComplianceSettings, Mode, Rule
from ctid.compliance.frequency import (
    DAY,
    WEEK,
    Attempt,
    FrequencyCaps,
    FrequencyJournal,
    number_key,
)
from ctid.compliance.settings import Cap
from ctid.errors import PolicyError
from ctid.tracker.model import OutboundDial

T0 = 1_795_000_000.0
NUMBER = "+17203000104"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def service(data_dir: Path, clock: Clock, per_week: int | None = None) -> ComplianceService:
    settings = ComplianceSettings.model_validate(
        {
            "version": "f1",
            "calling_hours": {"mode": "off"},
            "do_not_call": {"data_dir": data_dir},
            "frequency": {"mode": "warn", "site": {"per_day": 3, "per_week": per_week}},
        }
    )
    svc = ComplianceService(settings, lambda pbx, uid: None, {}, clock)
    svc.load()
    return svc


def dial(svc: ComplianceService, ts: float, number: str = "7203000104") -> list[Rule]:
    decisions = svc.guard.on_effect(OutboundDial("pbx", ts, "1001", number, None, f"L{ts}"))
    return [d.rule for d in decisions]


@pytest.mark.asyncio
async def test_the_third_attempt_is_allowed_and_the_fourth_flagged_across_a_restart(
    tmp_path: Path,
) -> None:
    clock = Clock(T0)
    first = service(tmp_path, clock)
    assert dial(first, T0) == []
    assert dial(first, T0 + 60) == []
    await first.tick(T0 + 61)

    clock.now = T0 + 3600
    second = service(tmp_path, clock)  # a restart
    assert dial(second, T0 + 3600, "+1 720 300 0104") == []  # 3rd in 24 h: at the cap, allowed
    await second.tick(T0 + 3601)

    clock.now = T0 + 7200
    third = service(tmp_path, clock)  # and another
    assert dial(third, T0 + 7200) == [Rule.FREQUENCY]  # 4th: over the cap (warn: it counts)
    # Once the first two have left the day (24 h after the second), two remain: allowed.
    assert dial(third, T0 + DAY + 60.5) == []


@pytest.mark.asyncio
async def test_the_journal_keeps_a_keyed_hash_not_the_number(tmp_path: Path) -> None:
    svc = service(tmp_path, Clock(T0))
    dial(svc, T0)
    await svc.tick(T0 + 1)
    text = (tmp_path / "frequency.jsonl").read_text()
    assert "3000104" not in text
    (entry,) = [json.loads(line) for line in text.splitlines()]
    key = (tmp_path / "frequency.key").read_bytes()
    assert entry == {"key": number_key(NUMBER, key), "seat": "1001", "ts": T0}
    assert len(key) == 32
    assert stat.S_IMODE((tmp_path / "frequency.key").stat().st_mode) == 0o600
    # The key is made once: a restart hashes the number the same way.
    assert service(tmp_path, Clock(T0)).frequency_journal is not None
    assert (tmp_path / "frequency.key").read_bytes() == key


def write_journal(tmp_path: Path, attempts: list[Attempt]) -> None:
    journal = FrequencyJournal(tmp_path)
    journal.append(attempts)


def test_attempts_a_week_old_are_dropped_and_the_journal_compacted(tmp_path: Path) -> None:
    key = FrequencyJournal(tmp_path).secret()
    hashed = number_key(NUMBER, key)
    now = T0 + WEEK
    write_journal(
        tmp_path,
        [
            Attempt(hashed, "1001", T0 - 1),  # older than a week
            Attempt(hashed, "1001", T0),  # exactly a week old at ``now``: out
            Attempt(hashed, "1002", T0 + 1),  # a week less a second: kept
            Attempt(hashed, None, now - 10),
        ],
    )
    with structlog.testing.capture_logs() as logs:
        svc = service(tmp_path, Clock(now), per_week=3)
    lines = (tmp_path / "frequency.jsonl").read_text().splitlines()
    assert [json.loads(line)["ts"] for line in lines] == [T0 + 1, now - 10]
    assert not (tmp_path / "frequency.jsonl.tmp").exists()
    (loaded,) = [entry for entry in logs if entry["event"] == "frequency_loaded"]
    assert (loaded["attempts"], loaded["expired"]) == (2, 2)
    # Two attempts in the week: a third is allowed, then the weekly cap of 3 is reached
    # (while the attempt at T0 + 1 is still inside the week).
    assert dial(svc, now) == []
    assert dial(svc, now + 0.5) == [Rule.FREQUENCY]


def test_a_journal_cut_short_keeps_every_complete_line_and_a_bad_one_is_an_error(
    tmp_path: Path,
) -> None:
    journal = FrequencyJournal(tmp_path)
    journal.append([Attempt("k1", "1001", T0)])
    with journal.path.open("a") as handle:
        handle.write('{"key": "k2", "se')
    assert journal.load(T0) == ([Attempt("k1", "1001", T0)], 1)
    journal.path.write_text('{"key": "k1", "seat": null, "ts": "noon"}\n{"key": "k2"}\n')
    with pytest.raises(PolicyError, match=r"frequency.jsonl:1: bad journal line"):
        journal.load(T0)


@pytest.mark.asyncio
async def test_a_failed_write_is_retried_and_logged_once(tmp_path: Path) -> None:
    svc = service(tmp_path, Clock(T0))
    journal = tmp_path / "frequency.jsonl"
    journal.mkdir()  # the journal cannot be opened for appending
    with structlog.testing.capture_logs() as logs:
        dial(svc, T0)
        await svc.tick(T0 + 1)
        dial(svc, T0 + 2)
        await svc.tick(T0 + 3)
        await svc.tick(T0 + 4)
        journal.rmdir()
        await svc.tick(T0 + 5)
        await svc.tick(T0 + 6)
    events = [entry["event"] for entry in logs if entry["event"].startswith("frequency_")]
    assert events == ["frequency_journal_failed", "frequency_journal_recovered"]
    failed = next(entry for entry in logs if entry["event"] == "frequency_journal_failed")
    assert failed["log_level"] == "error"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [line["ts"] for line in lines] == [T0, T0 + 2]  # nothing lost, in order


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
@pytest.mark.asyncio
async def test_a_read_only_data_dir_is_retried_until_writable(tmp_path: Path) -> None:
    svc = service(tmp_path, Clock(T0))
    await asyncio.to_thread(tmp_path.chmod, 0o500)
    try:
        with structlog.testing.capture_logs() as logs:
            dial(svc, T0)
            await svc.tick(T0 + 1)
            await svc.tick(T0 + 2)
    finally:
        await asyncio.to_thread(tmp_path.chmod, 0o700)
    await svc.tick(T0 + 3)
    assert [e["event"] for e in logs if e["event"].startswith("frequency_")] == [
        "frequency_journal_failed"
    ]
    assert len((tmp_path / "frequency.jsonl").read_text().splitlines()) == 1


@pytest.mark.asyncio
async def test_a_running_daemon_compacts_the_journal_once_a_day(tmp_path: Path) -> None:
    clock = Clock(T0)
    svc = service(tmp_path, clock, per_week=7)
    dial(svc, T0)
    await svc.tick(T0 + 1)
    dial(svc, T0 + DAY / 2)
    await svc.tick(T0 + DAY / 2 + 1)  # less than a day since the start: not compacted yet
    assert len((tmp_path / "frequency.jsonl").read_text().splitlines()) == 2
    await svc.tick(T0 + WEEK + 1)  # the attempt at T0 has expired
    lines = (tmp_path / "frequency.jsonl").read_text().splitlines()
    assert [json.loads(line)["ts"] for line in lines] == [T0 + DAY / 2]


def test_without_a_data_dir_counts_stay_in_memory(tmp_path: Path) -> None:
    settings = ComplianceSettings(version="f1")
    svc = ComplianceService(settings, lambda pbx, uid: None, {}, Clock(T0))
    svc.load()
    assert svc.frequency_journal is None
    assert list(tmp_path.iterdir()) == []


def test_the_key_must_be_set_before_the_first_attempt() -> None:
    caps = FrequencyCaps(Cap(per_day=3), Cap())
    caps.record(NUMBER, "1001", T0)
    with pytest.raises(RuntimeError):
        caps.keep_journal(b"k" * 32)


@pytest.mark.asyncio
async def test_a_frequency_rule_that_is_off_journals_nothing(tmp_path: Path) -> None:
    settings = ComplianceSettings.model_validate(
        {"version": "f1", "do_not_call": {"data_dir": tmp_path}, "frequency": {"mode": "off"}}
    )
    svc = ComplianceService(settings, lambda pbx, uid: None, {}, Clock(T0))
    svc.load()
    assert svc.settings.frequency.mode is Mode.OFF
    svc.guard.on_effect(OutboundDial("pbx", T0, "1001", NUMBER, None, "L1"))
    await svc.tick(T0 + 1)
    assert not (tmp_path / "frequency.jsonl").exists()
