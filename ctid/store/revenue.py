"""Revenue per seat, imported from a CSV file, for the monthly pay estimate.

A row gives a seat, an amount and either a ``date`` (YYYY-MM-DD) or a ``month`` (YYYY-MM). The
file is read completely before anything is stored; the first bad row stops the import naming
file, line and column. Rows of one seat and day (or month) are summed; importing again
replaces what the store holds for that seat and day (a corrected export wins), never adds to it.
Amounts are kept in whole cents. Blocking: call from a worker thread in async code.
"""

from __future__ import annotations

import argparse
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from ctid.config import Settings
from ctid.errors import InputError, StoreError
from ctid.store.cli_args import database_url
from ctid.store.csv_input import read_csv_file
from ctid.store.migrate import describe_error
from ctid.store.runtime import open_existing
from ctid.store.schema import revenue
from ctid.store.upsert import upsert_statement

if TYPE_CHECKING:
    from _csv import Reader

Key = tuple[str, dt.date, str]
"""Seat, day (a month's first day for a month total), span (``day`` or ``month``)."""


class _RowError(ValueError):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def read_revenue(path: Path) -> dict[Key, int]:
    """Cents per seat and day or month; :class:`InputError` names the first bad cell."""
    return read_csv_file(path, lambda reader: _amounts(reader, path))


def _amounts(reader: Reader, path: Path) -> dict[Key, int]:
    header = [cell.strip().lower() for cell in next(reader, [])]
    missing = [name for name in ("seat", "amount") if name not in header]
    if missing or not {"date", "month"} & set(header):
        lacking = ", ".join(missing) if missing else "date or month"
        raise InputError(f"{path}:1: the header lacks column(s) {lacking}")
    names: tuple[str, ...] = ("seat", "date", "month", "amount")
    where = {name: header.index(name) for name in names if name in header}
    out: dict[Key, int] = {}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        cells = {name: row[i].strip() if i < len(row) else "" for name, i in where.items()}
        try:
            key, cents = _row(cells)
        except _RowError as err:
            column = where[err.column] + 1
            raise InputError(
                f"{path}:{reader.line_num}: column {column} ({err.column}): {err}"
            ) from None
        out[key] = out.get(key, 0) + cents
    return out


def _row(cells: dict[str, str]) -> tuple[Key, int]:
    seat = cells["seat"]
    if not seat or len(seat) > 64:
        raise _RowError("seat", "a seat id of 1 to 64 characters is required")
    date, month = cells.get("date", ""), cells.get("month", "")
    if bool(date) == bool(month):
        raise _RowError("date" if "date" in cells else "month", "give a date or a month")
    try:
        key = (seat, dt.date.fromisoformat(date), "day") if date else _month_key(seat, month)
    except ValueError:
        column = "date" if date else "month"
        shape = "YYYY-MM-DD" if date else "YYYY-MM"
        raise _RowError(column, f"{date or month!r} is not {shape}") from None
    try:
        amount = Decimal(cells["amount"].replace(",", ""))
    except InvalidOperation:
        raise _RowError("amount", f"{cells['amount']!r} is not an amount") from None
    if not amount.is_finite():
        raise _RowError("amount", f"{cells['amount']!r} is not an amount")
    return key, int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _month_key(seat: str, month: str) -> Key:
    if len(month) != 7:
        raise ValueError(month)
    return seat, dt.date.fromisoformat(f"{month}-01"), "month"


def store_revenue(engine: Engine, amounts: dict[Key, int], source: str) -> int:
    """All rows in one transaction; a seat and day already stored gets the new amount."""
    now = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = [
        {"seat": seat, "day": day, "span": span, "amount_cents": cents,
         "source": source[:255], "imported_at": now}
        for (seat, day, span), cents in amounts.items()
    ]  # fmt: skip
    if not rows:
        return 0
    try:
        with engine.begin() as connection:
            connection.execute(upsert_statement(connection.dialect.name, "revenue"), rows)
    except SQLAlchemyError as err:
        raise StoreError(f"cannot store the revenue: {describe_error(err)}") from err
    return len(rows)


def month_revenue(engine: Engine, first: dt.date, through: dt.date) -> dict[str, float]:
    """Per seat, the amounts dated ``first`` .. ``through`` plus the month totals of
    ``first``'s month (a month total counts whole, even in a month-to-date report)."""
    dated = and_(revenue.c.span == "day", revenue.c.day >= first, revenue.c.day <= through)
    whole = and_(revenue.c.span == "month", revenue.c.day == first.replace(day=1))
    query = (
        select(revenue.c.seat, func.sum(revenue.c.amount_cents))
        .where(or_(dated, whole))
        .group_by(revenue.c.seat)
    )
    try:
        with engine.connect() as connection:
            return {seat: int(cents) / 100 for seat, cents in connection.execute(query)}
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err


def import_command(args: argparse.Namespace, settings: Settings) -> int:
    amounts = read_revenue(args.file)  # all read before any is stored
    engine = open_existing(database_url(args, settings))
    try:
        stored = store_revenue(engine, amounts, source=f"csv:{args.file.name}")
    finally:
        engine.dispose()
    seats = len({seat for seat, _, _ in amounts})
    print(f"{args.file}: {stored} revenue amounts stored for {seats} seats")
    return 0
