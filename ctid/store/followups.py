"""Follow-up claims from the CRM: read (CSV or the HTTP API), checked, stored hashed.

A claim says a seat followed a customer up at a time. Each file or request is stored in one
transaction, all or nothing; a claim already stored (same seat, time and number) is counted
as a duplicate and left as it was, so importing the same export twice adds nothing. The
number is kept as a keyed hash and a masked form (:mod:`ctid.store.number_key`).
Blocking: call from a worker thread in async code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ctid.errors import InputError, StoreError
from ctid.store.csv_input import read_csv_file
from ctid.store.migrate import describe_error
from ctid.store.number_key import NumberHasher
from ctid.store.schema import follow_ups
from ctid.store.upsert import upsert_statement

if TYPE_CHECKING:
    from _csv import Reader

COLUMNS = ("seat", "number", "time", "class", "note")
REQUIRED = ("seat", "number", "time")
CLASSES = ("A", "B")
MAX_SEAT = 64
MAX_NOTE = 1000


class ClaimError(ValueError):
    """One field of one claim is unusable: ``column`` names it."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"{column}: {message}")
        self.column = column
        self.message = message


@dataclass(frozen=True, slots=True)
class Claim:
    seat: str
    number: str
    """As given; only ever held in memory."""
    at: dt.datetime
    """Aware."""
    klass: str | None
    note: str


@dataclass(frozen=True, slots=True)
class ImportSummary:
    added: int
    duplicates: int


def parse_time(text: str, tz: ZoneInfo) -> dt.datetime:
    """ISO 8601 date and time; without an offset it is the site's local time."""
    value = text.strip()
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        pass
    else:
        raise ClaimError("time", f"{value!r} is a date without a time")
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ClaimError("time", f"{value!r} is not an ISO 8601 time") from None
    return at.replace(tzinfo=tz) if at.tzinfo is None else at


def make_claim(
    seat: str,
    number: str,
    at: dt.datetime,
    klass: str | None,
    note: str,
    hasher: NumberHasher,
    tz: ZoneInfo,
) -> Claim:
    """A checked claim; :class:`ClaimError` names the first unusable field."""
    seat, number, note = seat.strip(), number.strip(), note.strip()
    if not seat or len(seat) > MAX_SEAT:
        raise ClaimError("seat", f"a seat id of 1 to {MAX_SEAT} characters is required")
    if not hasher.is_number(number):
        # The value is not echoed: it may be a customer's number with a typo.
        raise ClaimError("number", "not a phone number")
    normalised = (klass or "").strip().upper() or None
    if normalised is not None and normalised not in CLASSES:
        raise ClaimError("class", f"{klass!r} is not A, B or empty")
    if len(note) > MAX_NOTE:
        raise ClaimError("note", f"longer than {MAX_NOTE} characters")
    return Claim(seat, number, at if at.tzinfo else at.replace(tzinfo=tz), normalised, note)


def read_claims(path: Path, hasher: NumberHasher, tz: ZoneInfo) -> list[Claim]:
    """Every claim of a CSV file; the first bad one is an :class:`InputError` naming the
    file, line and column."""
    return read_csv_file(path, lambda reader: _claims_of(reader, path, hasher, tz))


def _claims_of(reader: Reader, path: Path, hasher: NumberHasher, tz: ZoneInfo) -> list[Claim]:
    header = [cell.strip().lower() for cell in next(reader, [])]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise InputError(f"{path}:1: the header lacks column(s) {', '.join(missing)}")
    where = {name: header.index(name) for name in COLUMNS if name in header}
    claims: list[Claim] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue  # blank lines are harmless
        cells = {name: row[i] if i < len(row) else "" for name, i in where.items()}
        try:
            at = parse_time(cells["time"], tz)
            claim = make_claim(
                cells["seat"], cells["number"], at, cells.get("class"), cells.get("note", ""),
                hasher, tz,
            )  # fmt: skip
        except ClaimError as err:
            column = where[err.column] + 1
            raise InputError(
                f"{path}:{reader.line_num}: column {column} ({err.column}): {err.message}"
            ) from None
        claims.append(claim)
    return claims


def claim_rows(
    claims: Iterable[Claim], hasher: NumberHasher, tz: ZoneInfo, source: str, now: dt.datetime
) -> list[dict[str, Any]]:
    """Rows for ``follow_ups``, a claim repeated within the batch kept once."""
    rows: dict[tuple[str, dt.datetime, str], dict[str, Any]] = {}
    for claim in claims:
        hashed = hasher.hashed(claim.number)
        at = claim.at.astimezone(dt.UTC)
        rows.setdefault(
            (claim.seat, at, hashed.digest),
            {
                "seat": claim.seat,
                "day": claim.at.astimezone(tz).date(),
                "at": at,
                "number_hash": hashed.digest,
                "number_masked": hashed.masked,
                "class": claim.klass,
                "note": claim.note,
                "source": source[:255],
                "imported_at": now,
            },
        )
    return list(rows.values())


def store_claims(
    engine: Engine,
    claims: Sequence[Claim],
    hasher: NumberHasher,
    tz: ZoneInfo,
    source: str,
    now: dt.datetime | None = None,
) -> ImportSummary:
    """Store the claims in one transaction; those already stored are counted, not changed."""
    rows = claim_rows(claims, hasher, tz, source, now or dt.datetime.now(dt.UTC))
    if not rows:
        return ImportSummary(0, len(claims))
    try:
        with engine.begin() as connection:
            statement = upsert_statement(connection.dialect.name, "follow_ups")
            added = len(connection.execute(statement.returning(follow_ups.c.id), rows).all())
    except SQLAlchemyError as err:
        raise StoreError(f"cannot store the follow-ups: {describe_error(err)}") from err
    return ImportSummary(added, len(claims) - added)
