"""Lead lists: named sets of customer numbers (hashed, masked) and how far the floor got
through one — dialled at least once, answered at least once — over a span of local days.

Only outbound calls count: a lead is *dialled* when a seat placed a call to it, *answered*
when such a call was answered. Per team, by the team of the seat that placed the call.
Calls keep the full number; it is hashed here with the key the list was stored with.
Blocking: call from a worker thread in async code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, and_, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from ctid.errors import InputError, StoreError
from ctid.store.csv_input import read_csv_file
from ctid.store.followups import ImportSummary
from ctid.store.migrate import describe_error
from ctid.store.number_key import NumberHasher
from ctid.store.queries import day_window
from ctid.store.schema import calls, lead_lists, leads
from ctid.store.upsert import upsert_statement

if TYPE_CHECKING:
    from _csv import Reader

MAX_NAME = 128


def read_numbers(path: Path, hasher: NumberHasher) -> list[str]:
    """The ``number`` column of a CSV; a bad row is one error naming file, line and column."""

    def numbers_of(reader: Reader) -> list[str]:
        header = [cell.strip().lower() for cell in next(reader, [])]
        if "number" not in header:
            raise InputError(f"{path}:1: the header lacks column number")
        column = header.index("number")
        numbers: list[str] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            value = row[column].strip() if column < len(row) else ""
            if not hasher.is_number(value):
                raise InputError(
                    f"{path}:{reader.line_num}: column {column + 1} (number): not a phone number"
                )
            numbers.append(value)
        return numbers

    return read_csv_file(path, numbers_of)


def import_leads(
    engine: Engine,
    name: str,
    numbers: Iterable[str],
    hasher: NumberHasher,
    now: dt.datetime | None = None,
) -> ImportSummary:
    """Add ``numbers`` to the list ``name`` (created if new) in one transaction; numbers the
    list already holds are counted as duplicates."""
    if not name.strip() or len(name) > MAX_NAME:
        raise InputError(f"list name: 1 to {MAX_NAME} characters")
    given = list(numbers)
    rows: dict[str, str] = {}
    for number in given:
        hashed = hasher.hashed(number)
        rows.setdefault(hashed.digest, hashed.masked)
    at = now or dt.datetime.now(dt.UTC)
    try:
        with engine.begin() as connection:
            list_id = _list_id(connection, name, at)
            added = 0
            if rows:
                statement = upsert_statement(connection.dialect.name, "leads")
                values = [
                    {"list_id": list_id, "number_hash": h, "number_masked": m}
                    for h, m in rows.items()
                ]
                added = len(connection.execute(statement.returning(leads.c.list_id), values).all())
            held = select(func.count()).select_from(leads).where(leads.c.list_id == list_id)
            total = connection.execute(held).scalar_one()
            connection.execute(
                update(lead_lists)
                .where(lead_lists.c.id == list_id)
                .values(imported_at=at, rows=total)
            )
    except SQLAlchemyError as err:
        raise StoreError(f"cannot store the lead list: {describe_error(err)}") from err
    return ImportSummary(added, len(given) - added)


def _list_id(connection: Connection, name: str, at: dt.datetime) -> int:
    found = connection.execute(select(lead_lists.c.id).where(lead_lists.c.name == name))
    existing = found.scalar_one_or_none()
    if existing is not None:
        return int(existing)
    created = insert(lead_lists).values(name=name, imported_at=at, rows=0)
    return int(connection.execute(created.returning(lead_lists.c.id)).scalar_one())


@dataclass(slots=True)
class Reach:
    dialled: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Coverage:
    name: str
    first: dt.date
    last: dt.date
    numbers: int
    centre: Reach
    teams: dict[str, Reach]
    """By the team of the seat that placed the call."""


def list_hashes(connection: Connection, name: str) -> set[str]:
    found = connection.execute(select(lead_lists.c.id).where(lead_lists.c.name == name))
    list_id = found.scalar_one_or_none()
    if list_id is None:
        known = connection.execute(select(lead_lists.c.name).order_by(lead_lists.c.name))
        names = ", ".join(known.scalars()) or "none"
        raise InputError(f"no lead list {name!r} (known: {names})")
    query = select(leads.c.number_hash).where(leads.c.list_id == list_id)
    return set(connection.execute(query).scalars())


def coverage(
    connection: Connection,
    name: str,
    span: tuple[dt.date, dt.date],
    tz: ZoneInfo,
    team_of: Callable[[str], str],
) -> Coverage:
    """How much of the list ``name`` outbound calls reached over the local days ``span``."""
    first, last = span
    wanted = list_hashes(connection, name)
    start, _ = day_window(first, tz)
    _, end = day_window(last, tz)
    query = select(calls.c.remote_hash, calls.c.placed_by, calls.c.seat, calls.c.outcome).where(
        and_(calls.c.started_at >= start, calls.c.started_at < end, calls.c.direction == "outbound")
    )
    centre, teams = Reach(), dict[str, Reach]()
    for row in connection.execute(query):
        digest = row.remote_hash  # stored with the lead list's key and region
        if digest is None or digest not in wanted:
            continue
        seat = row.placed_by or row.seat
        reaches = [centre]
        if seat:
            reaches.append(teams.setdefault(team_of(seat), Reach()))
        for reach in reaches:
            reach.dialled.add(digest)
            if row.outcome == "answered":
                reach.answered.add(digest)
    return Coverage(name, first, last, len(wanted), centre, teams)
