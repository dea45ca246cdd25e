"""The daemon on PostgreSQL loses its database mid-run: it keeps measuring, says the store is
unhealthy, and once the database is back every call is stored exactly once.

The whole daemon runs in-process (``run_daemon``) against a replay of the mixed capture paced
at 40x; PostgreSQL is reached through a TCP proxy the test cuts and restores.  Skipped when
no PostgreSQL answers (see tests/store/conftest.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select

from ctid.ami.capture import load_capture
from ctid.ami.server import AmiReplayServer
from ctid.config import Settings
from ctid.store.capture import capture_rows
from ctid.store.engine import make_engine
from ctid.store.schema import metadata
from ctid.store.upsert import PRIMARY_KEYS
from tests.store.support import TcpProxy, count
from tests.test_daemon import running
from tests.truth import CAPTURES, capture_streams, load_truth

CAPTURE = "mixed_busy_period"
PBX = "pbx1"
SPEED = 40.0
"""582 s of recorded traffic in about 15 s."""
CUT_AFTER_CALLS = 20
CALLS_DURING_OUTAGE = 8
CALL_TABLES = ("calls", "call_segments", "cdrs", "internal_talk", "internal_calls")

pytestmark = pytest.mark.postgres


class Observer:
    """Reads the daemon as an operator would: /metrics, /healthz, and the database."""

    def __init__(self, http: aiohttp.ClientSession, url: str, db: Engine) -> None:
        self.http, self.url, self.db = http, url, db

    async def metrics(self) -> dict[str, float]:
        """Every sample summed over its labels."""
        async with self.http.get(f"{self.url}/metrics") as response:
            text = await response.text()
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
        return out

    async def health(self) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/healthz") as response:
            report: dict[str, Any] = await response.json()
            report["http_status"] = response.status
            return report

    async def calls_ended(self) -> float:
        return (await self.metrics()).get("ctid_calls_total", 0.0)

    async def stored(self, table: str = "calls") -> int:
        return await asyncio.to_thread(count, self.db, table)


async def until(condition: Callable[[], Awaitable[bool]], within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        # Polling, as an operator's dashboard does: the daemon has no event to wait on.
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def expected_rows() -> dict[str, set[tuple[Any, ...]]]:
    """The keys each table must hold once the capture is stored (what ``ctid reconcile``
    would write for it)."""
    keys: dict[str, set[tuple[Any, ...]]] = {table: set() for table in CALL_TABLES}
    for unit in capture_rows(capture_streams(CAPTURE), pbx=PBX).units:
        for table, values in unit:
            keys[table].add(tuple(values[c] for c in PRIMARY_KEYS[table]))
    return keys


def stored_keys(db: Engine) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db.connect() as connection:
        for name in CALL_TABLES:
            table = metadata.tables[name]
            columns = [table.c[c] for c in PRIMARY_KEYS[name]]
            out[name] = [tuple(row) for row in connection.execute(select(*columns))]
    return out


@pytest.mark.asyncio
async def test_the_daemon_measures_through_a_database_outage_and_stores_every_call_once(
    pg_url: str, tmp_path: Path
) -> None:
    truth_calls = {call["linkedid"] for call in load_truth(CAPTURE)["expected"]["per_call"]}
    want = expected_rows()
    proxy = TcpProxy(pg_url)
    await proxy.up()
    direct = make_engine(pg_url)
    capture = await asyncio.to_thread(load_capture, CAPTURES / f"{CAPTURE}.ami.gz")
    try:
        async with AmiReplayServer(capture, speed=SPEED) as pbx:
            settings = Settings.model_validate(
                {
                    "http": {"port": 0},
                    "pbx": [{"name": PBX, "port": pbx.port, "secret": pbx.secret}],
                    "store": {"url": proxy.url, "data_dir": str(tmp_path), "flush_ms": 20},
                }
            )
            async with (
                running(settings, ready_within=30) as (floor, url),
                aiohttp.ClientSession() as http,
            ):
                daemon = Observer(http, url, direct)
                await until(lambda: _at_least(daemon.calls_ended(), CUT_AFTER_CALLS))
                await until(lambda: _at_least(daemon.stored(), 1))

                await proxy.down()
                ended_at_cut = await daemon.calls_ended()
                talk_at_cut = (await daemon.metrics())["ctid_talk_seconds_total"]
                await until(lambda: _store_unhealthy(daemon))
                stored_while_down = await daemon.stored()
                # Measuring goes on without the database.
                await until(
                    lambda: _at_least(daemon.calls_ended(), ended_at_cut + CALLS_DURING_OUTAGE)
                )
                samples = await daemon.metrics()
                assert samples["ctid_talk_seconds_total"] > talk_at_cut
                assert samples["ctid_store_up"] == 0.0
                assert samples["ctid_store_backlog_rows"] > 0
                assert samples["ctid_store_rows_dropped_total"] == 0.0
                report = await daemon.health()
                assert report["store"]["healthy"] is False
                assert report["store"]["backlog"] > 0
                # The AMI link is what /healthz's status is about; it stays up.
                assert report["http_status"] == 200
                assert report["pbx"][PBX]["connected"] is True
                assert await daemon.stored() == stored_while_down

                await proxy.up()
                writer = floor.store.writer if floor.store is not None else None
                assert writer is not None
                # Every call and every CDR (the last ones come after the last hangup) stored.
                await until(lambda: _drained(daemon, writer.backlog, want))
                report = await daemon.health()
                assert report["store"] == {"healthy": True, "backlog": 0}
                assert await daemon.calls_ended() == len(truth_calls)
                assert writer.dropped == 0
                assert writer.rejected == 0

        # Every call, segment, CDR and internal stretch of the capture, each exactly once.
        keys = await asyncio.to_thread(stored_keys, direct)
        for table in CALL_TABLES:
            assert len(keys[table]) == len(set(keys[table])), table
            assert set(keys[table]) == want[table], table
        assert {linkedid for _pbx, linkedid in keys["calls"]} == truth_calls
        assert await asyncio.to_thread(count, direct, "gaps") == 0  # the AMI link never dropped
    finally:
        await proxy.down()
        direct.dispose()


async def _at_least(value: Awaitable[float], minimum: float) -> bool:
    return await value >= minimum


async def _store_unhealthy(daemon: Observer) -> bool:
    return (await daemon.health())["store"]["healthy"] is False


async def _drained(daemon: Observer, backlog: int, want: dict[str, set[tuple[Any, ...]]]) -> bool:
    if backlog:
        return False
    return all([await daemon.stored(t) == len(want[t]) for t in ("calls", "cdrs")])
