"""``POST /api/followups``: the CRM pushes follow-up claims to the running daemon.

The body is a JSON list of ``{"seat", "number", "time", "class", "note"}`` (as the CSV's
columns), at most :data:`MAX_ITEMS` of them in :data:`MAX_BODY_BYTES`. The whole list is
stored or none of it; the answer counts what was added and what was stored already. The
route (bearer token, body limit, error shape) is wired in :mod:`ctid.api`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from sqlalchemy import Engine

from ctid.config import Settings
from ctid.errors import CtidError
from ctid.store.followups import (
    MAX_NOTE,
    MAX_SEAT,
    ClaimError,
    ImportSummary,
    make_claim,
    parse_time,
    store_claims,
)
from ctid.store.number_key import hasher_for
from ctid.store.runtime import Store

MAX_ITEMS = 2000
MAX_BODY_BYTES = 512 * 1024


class FollowUpHost(Protocol):
    """What the route needs of the daemon (:class:`ctid.floor.Floor`)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store | None: ...


class FollowUpItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seat: str = Field(min_length=1, max_length=MAX_SEAT)
    number: str = Field(min_length=1, max_length=32)
    time: str = Field(min_length=1, max_length=64)
    """ISO 8601; the site's local time without an offset (as in the CSV)."""
    klass: Literal["A", "B"] | None = Field(default=None, alias="class")
    note: str = Field(default="", max_length=MAX_NOTE)


FOLLOWUP_BATCH = TypeAdapter(
    Annotated[list[FollowUpItem], Field(min_length=1, max_length=MAX_ITEMS)]
)


async def store_followups(host: FollowUpHost, items: list[FollowUpItem]) -> tuple[int, Any]:
    """HTTP status and JSON answer for a validated body."""
    if host.store is None:
        return 409, {"error": "no database: follow-ups need [store] enabled"}
    engine, settings = host.store.engine, host.settings
    try:
        summary = await asyncio.to_thread(_store, engine, settings, items)
    except _BadItemError as bad:
        return 400, {"error": str(bad)}
    except CtidError as err:  # the database or the key file: one line, no row values
        return 503, {"error": str(err)}
    return 200, {"added": summary.added, "duplicates": summary.duplicates}


class _BadItemError(ValueError):
    pass


def _store(engine: Engine, settings: Settings, items: list[FollowUpItem]) -> ImportSummary:
    hasher, tz = hasher_for(settings), settings.site.tz
    claims = []
    for index, item in enumerate(items):
        try:
            at = parse_time(item.time, tz)
            claims.append(make_claim(item.seat, item.number, at, item.klass, item.note, hasher, tz))
        except ClaimError as err:
            raise _BadItemError(f"{index}.{err.column}: {err.message}") from None
    return store_claims(engine, claims, hasher, tz, source="api")
