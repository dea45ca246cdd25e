"""Helpers for the audit-table tests: a daemon on a given store, reading rows back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ctid.config import Settings
from ctid.store.engine import make_engine
from ctid.store.schema import metadata
from tests.test_api import TOKEN
from tests.truth import CAPTURES


def daemon_settings(db_url: str, tmp_path: Path, policy: Path, **extra: Any) -> Settings:
    """The demo daemon (one short call) with a quota policy, the API open, the given store."""
    config: dict[str, Any] = {
        "http": {"port": 0, "api_token": TOKEN},
        "demo": {
            "capture": CAPTURES / "answered_customer_hangup.ami.gz",
            "speed": 1000,
            "loop": False,
        },
        "policy": {"file": policy},
        "seats": [{"id": "1001", "team": "team-a"}, {"id": "1002", "team": "team-a"}],
        "store": {"url": db_url, "data_dir": str(tmp_path / "var"), "flush_ms": 20},
    }
    return Settings.model_validate(config | extra)


def rows(url: str, table: str) -> list[dict[str, Any]]:
    """Every row of ``table``, in primary key order (blocking)."""
    engine = make_engine(url)
    schema = metadata.tables[table]
    try:
        with engine.connect() as connection:
            found = connection.execute(select(schema).order_by(*schema.primary_key.columns))
            return [dict(row._mapping) for row in found]
    finally:
        engine.dispose()


async def rows_when(
    url: str, table: str, ready: Callable[[list[dict[str, Any]]], bool], within: float = 15.0
) -> list[dict[str, Any]]:
    """Poll ``table`` until ``ready(rows)``: the writer has no event to wait on from outside."""
    async with asyncio.timeout(within):
        while True:
            try:
                found = await asyncio.to_thread(rows, url, table)
            except SQLAlchemyError:  # not migrated yet: the daemon does that as it starts
                found = []
            if ready(found):
                return found
            await asyncio.sleep(0.05)
