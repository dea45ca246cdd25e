"""Rows per second the store writer sustains, on SQLite and on PostgreSQL, in one run.

``python -m bench.store_throughput [--copies 20]``: the mixed capture's rows (calls, segments,
CDRs, internal talk) are stored ``copies`` times under distinct PBX names, all handed to a
:class:`~ctid.store.writer.StoreWriter` at once, and timed from the first put to an empty
backlog.  Call numbers are hashed and masked as the daemon stores them, and sealed (encrypted)
too unless ``--no-seal``.  PostgreSQL is a throw-away database on ``CTID_TEST_POSTGRES`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432``); it is skipped with a note if unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import secrets
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from ctid.store.capture import capture_rows
from ctid.store.engine import make_engine
from ctid.store.migrate import upgrade_engine
from ctid.store.number_key import NumberHasher
from ctid.store.number_protect import NumberKeys, NumberProtector
from ctid.store.number_seal import Sealer
from ctid.store.rows import StoreRow
from ctid.store.writer import StoreWriter

CAPTURE = Path(__file__).resolve().parent.parent / "tests" / "captures" / "mixed_busy_period.ami.gz"
PG_SERVER = os.environ.get("CTID_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")


def _numbers(seal: bool) -> NumberKeys:
    hasher = NumberHasher(secrets.token_hex(32).encode(), "US")
    sealer = Sealer(Fernet.generate_key()) if seal else None
    return NumberKeys.fixed(NumberProtector(hasher, sealer))


async def _write(url: str, units: Sequence[Sequence[StoreRow]], seal: bool) -> tuple[int, float]:
    engine = make_engine(url)
    try:
        upgrade_engine(engine)
        writer = StoreWriter(
            engine, numbers=_numbers(seal), flush_ms=50, batch_rows=500, memory_rows=10_000_000
        )
        task = asyncio.create_task(writer.run())
        start = time.perf_counter()
        for unit in units:
            writer.put(unit)
        while writer.backlog:  # noqa: ASYNC110 - the writer exposes a count, not an event
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        await writer.close()
        await task
        return writer.flushed, elapsed
    finally:
        engine.dispose()


@contextmanager
def _postgres() -> Iterator[str | None]:
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    name = f"ctid_bench_{secrets.token_hex(4)}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        admin.dispose()
        yield None
        return
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--no-seal", action="store_true", help="hash and mask numbers only")
    args = parser.parse_args(argv)
    data = gzip.decompress(CAPTURE.read_bytes())
    units = [
        unit for copy in range(args.copies) for unit in capture_rows([data], pbx=f"pbx{copy}").units
    ]
    rows = sum(len(unit) for unit in units)
    print(f"{args.copies} copies of the mixed capture: {len(units)} units, {rows} rows")
    with tempfile.TemporaryDirectory() as tmp:
        written, seconds = asyncio.run(
            _write(f"sqlite:///{tmp}/bench.db", units, seal=not args.no_seal)
        )
        print(f"SQLite (WAL):  {written} rows in {seconds:.2f} s = {written / seconds:,.0f} rows/s")
    with _postgres() as url:
        if url is None:
            print(f"PostgreSQL: not reachable at {PG_SERVER}, skipped")
            return
        written, seconds = asyncio.run(_write(url, units, seal=not args.no_seal))
        print(f"PostgreSQL:    {written} rows in {seconds:.2f} s = {written / seconds:,.0f} rows/s")


if __name__ == "__main__":
    main()
