"""Backfill from Master.csv: calls that ended inside an AMI gap, added once, marked, counted.

No capture has a call that ends inside its gap (the restart's first call ends before the PBX
goes down, the crash's has no CDR), so the situation is made from ``pbx_restart_mid_call``:
its first connection is cut just before the first frame of its first call, as if the AMI
link had dropped then.  That call ends inside the gap that follows; its row in the
``Master.csv`` the PBX wrote (the truth file's ``master_csv``) is what the backfill finds.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select

from ctid.ami.capture import parse_capture
from ctid.ami.events import ChannelHungUp, PbxBooted
from ctid.ami.server import AmiReplayServer
from ctid.cdr_checks import CdrChecks
from ctid.cli import main
from ctid.config import Settings
from ctid.metrics.health import ReconcileMetrics
from ctid.store.backfill import BackfillReport, backfill, insert_absent
from ctid.store.capture import capture_rows
from ctid.store.engine import make_engine
from ctid.store.queries import load_calls_by_id, rebuild_day
from ctid.store.runtime import Store
from ctid.store.schema import calls, gaps
from ctid.store.writer import StoreWriter
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Direction, Outcome
from tests.store.support import (
    FAST_BACKOFF,
    TEST_NUMBERS,
    count,
    migrated,
    wait_for,
    writer_running,
)
from tests.test_daemon import running
from tests.truth import capture_streams, load_truth

UTC = ZoneInfo("UTC")
LOST_CALL = "pbx-1795430323.109"
"""The restart capture's first call (seat 1001, billsec 10): ctid never sees it here."""
TRACKED_CALL = "pbx-1795430346.0"
"""Its second call (seat 1002), after the reconnect."""
LAST_FRAME_BEFORE_CUT = 1795430323.958911
SINCE, UNTIL = 1795430300.0, 1795430400.0
LAYOUTS = {
    "newcdrcolumns": 21,  # the recorded PBX: ... peeraccount, linkedid, sequence
    "loguniqueid": 18,  # ... uniqueid, userfield
    "default": 16,  # cdr_csv's defaults: no ids at all
}


def restart_without_the_first_call() -> list[bytes]:
    first, second = capture_streams("pbx_restart_mid_call")
    cut = first.rfind(b"\r\n\r\n", 0, first.find(LOST_CALL.encode())) + 4
    return [first[:cut], second]


def write_master_csv(path: Path, name: str, columns: int = 21) -> Path:
    """The rows cdr_csv wrote during the capture, as it writes them (strings quoted)."""
    truth = load_truth(name)
    names = truth["master_csv_columns"]
    numbers = {names.index(c) for c in ("duration", "billsec", "sequence")}
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        for row in truth["master_csv"]:
            out.writerow([int(v) if i in numbers else v for i, v in enumerate(row)][:columns])
    return path


async def store_streams(engine: Engine, streams: list[bytes], pbx: str = "pbx") -> None:
    """The capture's calls, CDRs and gap through the writer, as the daemon stores them."""
    capture = capture_rows(streams, pbx=pbx)
    writer = StoreWriter(
        engine, numbers=TEST_NUMBERS, flush_ms=20, batch_rows=50, backoff=FAST_BACKOFF
    )
    async with writer_running(writer):
        for unit in capture.units:
            writer.put(unit)
        await wait_for(lambda: writer.backlog == 0)


def run_backfill(engine: Engine, csv_file: Path, tz: ZoneInfo = UTC) -> BackfillReport:
    return backfill(
        engine,
        pbx="pbx",
        csv_path=csv_file,
        directory=EndpointDirectory(),
        since=SINCE,
        until=UNTIL,
        tz=tz,
        numbers=TEST_NUMBERS,
    )


def backfilled_flags(engine: Engine) -> dict[str, bool]:
    with engine.connect() as connection:
        rows = connection.execute(select(calls.c.linkedid, calls.c.backfilled)).all()
    return {linkedid: bool(flag) for linkedid, flag in rows}


@pytest.mark.asyncio
async def test_a_call_that_ended_in_the_gap_is_backfilled_once(db_url: str, tmp_path: Path) -> None:
    csv_file = write_master_csv(tmp_path / "Master.csv", "pbx_restart_mid_call")
    with migrated(db_url) as engine:
        await store_streams(engine, restart_without_the_first_call())
        assert backfilled_flags(engine) == {TRACKED_CALL: False}

        report = run_backfill(engine, csv_file)
        assert [c.linkedid for c in report.added] == [LOST_CALL]
        assert (report.external_calls, report.tracked, report.backfilled_before) == (2, 1, 0)
        assert report.completeness == 0.5
        assert report.offset_source == "cdrs"  # learnt from the tracked call's stored CDR
        assert backfilled_flags(engine) == {TRACKED_CALL: False, LOST_CALL: True}
        with engine.connect() as connection:
            (lost,) = load_calls_by_id(connection, "pbx", [LOST_CALL])
        assert (lost.direction, lost.outcome, lost.placed_by) == (
            Direction.OUTBOUND,
            Outcome.ANSWERED,
            "1001",
        )
        assert (lost.remote, lost.talk_seconds) == ("710*****13", 10.0)  # talk = billsec
        assert lost.ended_at == dt.datetime(2026, 11, 23, 10, 38, 56, tzinfo=dt.UTC).timestamp()

        again = run_backfill(engine, csv_file)
        assert (again.added, again.backfilled_before, again.tracked) == ([], 1, 1)
        assert again.completeness == 0.5  # backfilled is not measured
        assert (count(engine, "calls"), count(engine, "call_segments")) == (2, 2)

        day = rebuild_day(engine, dt.date(2026, 11, 23), UTC)
        assert (day["1001"].outbound, day["1001"].answered, day["1001"].talk_seconds) == (1, 1, 10)
        assert day["1002"].talk_seconds == pytest.approx(6.024, abs=0.01)  # tracked, as measured


@pytest.mark.asyncio
@pytest.mark.parametrize("layout", LAYOUTS)
async def test_rows_without_a_linkedid_column_match_by_uniqueid_or_channels(
    layout: str, sqlite_url: str, tmp_path: Path
) -> None:
    csv_file = write_master_csv(tmp_path / "Master.csv", "pbx_restart_mid_call", LAYOUTS[layout])
    with migrated(sqlite_url) as engine:
        await store_streams(engine, restart_without_the_first_call())
        report = run_backfill(engine, csv_file)
        (added,) = report.added
        assert (report.tracked, added.placed_by, added.talk_seconds) == (1, "1001", 10.0)
        # With the uniqueid, the key is ctid's id for the call (the dialling channel's).
        assert (added.linkedid == LOST_CALL) is (layout != "default")
        assert run_backfill(engine, csv_file).added == []
        assert count(engine, "calls") == 2


@pytest.mark.asyncio
async def test_the_pbx_clock_offset_comes_from_stored_cdrs_not_the_site_zone(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The floor's site is in Shanghai, the lab PBX writes UTC: its stored CDRs tell.
    csv_file = write_master_csv(tmp_path / "Master.csv", "pbx_restart_mid_call")
    with migrated(sqlite_url) as engine:
        await store_streams(engine, restart_without_the_first_call())
        report = run_backfill(engine, csv_file, tz=ZoneInfo("Asia/Shanghai"))
    assert (report.offset, report.offset_source) == (0.0, "cdrs")
    assert [c.linkedid for c in report.added] == [LOST_CALL]


@pytest.mark.asyncio
async def test_a_killed_pbx_leaves_nothing_to_backfill(sqlite_url: str, tmp_path: Path) -> None:
    # The call in progress at the kill has no CDR at all; ctid keeps its interrupted call.
    csv_file = write_master_csv(tmp_path / "Master.csv", "pbx_crash_mid_call")
    with migrated(sqlite_url) as engine:
        await store_streams(engine, capture_streams("pbx_crash_mid_call"))
        report = run_backfill(engine, csv_file)
        assert len(report.gaps) == 1
        assert (report.added, report.external_calls, report.completeness) == ([], 1, 1.0)
        assert count(engine, "calls") == 2


@pytest.mark.asyncio
async def test_a_tracked_call_is_never_replaced_by_a_backfilled_one(db_url: str) -> None:
    with migrated(db_url) as engine:
        await store_streams(engine, restart_without_the_first_call())
        with engine.connect() as connection:
            (tracked,) = load_calls_by_id(connection, "pbx", [TRACKED_CALL])
        tracked.remote = "0000000000"
        assert insert_absent(engine, [tracked], TEST_NUMBERS.protector()) == set()
        with engine.connect() as connection:
            (stored,) = load_calls_by_id(connection, "pbx", [TRACKED_CALL])
        assert (stored.remote, backfilled_flags(engine)[TRACKED_CALL]) == ("710*****14", False)


@pytest.mark.asyncio
async def test_ctid_backfill_prints_what_it_added(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = write_master_csv(tmp_path / "Master.csv", "pbx_restart_mid_call")
    with migrated(sqlite_url) as engine:
        await store_streams(engine, restart_without_the_first_call())
    argv = ["backfill", "--db", sqlite_url, "--csv", str(csv_file), "--format", "json"]
    window = ["--since", "2026-11-23T10:38:00+00:00", "--until", "2026-11-23T10:40:00+00:00"]
    assert await asyncio.to_thread(main, [*argv, *window]) == 0
    (document,) = json.loads(capsys.readouterr().out)["pbxs"]
    assert [c["linkedid"] for c in document["added"]] == [LOST_CALL]
    assert (document["completeness"], document["tracked"]) == (0.5, 1)
    assert "7103999113" not in json.dumps(document)  # no customer number in the output
    assert await asyncio.to_thread(main, [*argv, *window]) == 0
    assert json.loads(capsys.readouterr().out)["pbxs"][0]["added"] == []


# --- the daemon: the gap's end, and the backfill when the link comes back ----------------


class GapLog:
    """The store writer's gap hook, recorded."""

    def __init__(self) -> None:
        self.gaps: list[tuple[str, float, float | None]] = []

    def record_gap(self, pbx: str, started_at: float, ended_at: float | None) -> None:
        self.gaps.append((pbx, started_at, ended_at))


@pytest.mark.parametrize("resync_first", [True, False])
def test_a_gap_ends_at_the_first_tracked_event_after_the_reconnect(resync_first: bool) -> None:
    settings = Settings.model_validate({"pbx": [{"name": "pbx", "secret": "s"}]})
    writer = GapLog()
    store: Any = Store(engine=None, writer=writer, numbers=TEST_NUMBERS)  # type: ignore[arg-type]
    metrics = ReconcileMetrics(CollectorRegistry())
    checks = CdrChecks(settings, settings.pbx, metrics, store, list)
    sink = checks.event_sink("pbx")
    checks.on_gap("pbx", 100.0, None)
    if resync_first:  # the resync's time is the last event before the gap
        checks.on_gap("pbx", 100.0, 100.0)
    sink(PbxBooted(101.0, 2.0))  # FullyBooted has no timestamp of its own: not evidence
    sink(ChannelHungUp(117.5, "pbx-1.1", 16))
    sink(ChannelHungUp(118.0, "pbx-1.2", 16))
    if not resync_first:  # a fast PBX: its events came before the resync finished
        checks.on_gap("pbx", 100.0, 118.0)
    assert writer.gaps[0] == ("pbx", 100.0, None)
    assert writer.gaps[-1] == ("pbx", 100.0, 117.5)


def first_gap(engine: Engine) -> tuple[float, float | None]:
    """The gap of the cut (the replay server closes the second connection too)."""
    with engine.connect() as connection:
        row = connection.execute(select(gaps).order_by(gaps.c.started_at)).first()
    assert row is not None
    return row.started_at.timestamp(), row.ended_at and row.ended_at.timestamp()


@pytest.mark.asyncio
async def test_the_daemon_backfills_the_gap_when_the_link_comes_back(tmp_path: Path) -> None:
    csv_file = write_master_csv(tmp_path / "Master.csv", "pbx_restart_mid_call")
    captures = [parse_capture(data, name="restart") for data in restart_without_the_first_call()]
    data_dir = tmp_path / "store"  # also CTID_STORE__DATA_DIR (tests/conftest.py)
    engine = make_engine(f"sqlite:///{data_dir / 'ctid.db'}")
    async with AmiReplayServer(captures, secret="s3cret", close_after_stream=True) as pbx:
        config: dict[str, Any] = {
            "pbx": [{"name": "pbx", "port": pbx.port, "secret": "s3cret", "cdr_csv": csv_file}],
            "http": {"enabled": False},
            "store": {"data_dir": str(data_dir), "flush_ms": 20},
        }
        async with running(Settings.model_validate(config)) as (floor, _url):

            def backfilled() -> bool:
                return backfilled_flags(engine).get(LOST_CALL) is True

            async with asyncio.timeout(60):
                # Polling the database, as an operator would: there is no event to wait on.
                while not await asyncio.to_thread(backfilled):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            labels = {"pbx": "pbx"}
            await wait_for(
                lambda: (
                    floor.registry.get_sample_value("ctid_data_completeness_ratio", labels) == 0.5
                ),  # the tracked call seen with its CDR, the backfilled one missed
                within=60,
            )
    started_at, ended_at = await asyncio.to_thread(first_gap, engine)
    engine.dispose()
    assert started_at == pytest.approx(LAST_FRAME_BEFORE_CUT, abs=1e-6)
    assert ended_at is not None
    assert ended_at > 1795430336  # the lost call's end is inside
