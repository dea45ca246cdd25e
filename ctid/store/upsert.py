"""Idempotent batch writes: ``INSERT ... ON CONFLICT (primary key) DO UPDATE``, executemany.

Audit tables (``info["append_only"]``) are ``DO NOTHING`` instead: a stored entry is never
changed, and a re-sent one is absorbed. Their conflict key is ``info["natural_key"]`` where
the primary key is assigned by the database. Blocking: the writer runs these in a thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from ctid.errors import StoreError
from ctid.store.number_protect import NumberProtector
from ctid.store.rows import TABLE_ORDER, StoreRow
from ctid.store.schema import metadata

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    table.name: tuple(table.info.get("natural_key", ()))
    or tuple(column.name for column in table.primary_key)
    for table in metadata.sorted_tables
}
"""The conflict key of each table: its natural key if declared, else its primary key."""


def write_rows(
    engine: Engine, rows: Sequence[StoreRow], numbers: NumberProtector | None = None
) -> None:
    """Write ``rows`` in one transaction; a row whose key exists replaces the stored one.

    ``calls`` rows carry the number in clear (``remote``): ``numbers`` turns it into its
    stored columns here, so a writer that has no protector cannot store a call at all.
    """
    grouped = group_by_table(rows)
    if "calls" in grouped:
        grouped["calls"] = protect_calls(grouped["calls"], numbers)
    with engine.begin() as connection:
        dialect = connection.dialect.name
        for table in TABLE_ORDER:
            batch = grouped.get(table)
            if batch:
                connection.execute(upsert_statement(dialect, table), batch)


def group_by_table(rows: Sequence[StoreRow]) -> dict[str, list[dict[str, Any]]]:
    """Rows per table, the last one winning per primary key.

    PostgreSQL refuses an ``ON CONFLICT DO UPDATE`` that touches one row twice in a statement
    (a call replayed twice within one batch would do that), so duplicates go before it.
    """
    by_key: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for table, values in rows:
        if table not in TABLE_ORDER:
            raise StoreError(f"not a table the writer fills: {table}")
        key = tuple(values[column] for column in PRIMARY_KEYS[table])
        by_key.setdefault(table, {})[key] = values
    return {table: list(keyed.values()) for table, keyed in by_key.items()}


def protect_calls(
    rows: list[dict[str, Any]], numbers: NumberProtector | None
) -> list[dict[str, Any]]:
    """``calls`` rows as stored: the clear ``remote`` replaced by hash, mask and seal."""
    if numbers is None:
        if any("remote" in values for values in rows):
            raise StoreError("calls with a number need the number key to be written")
        return rows
    return [numbers.call_values(values) if "remote" in values else values for values in rows]


@cache
def upsert_statement(dialect: str, table_name: str) -> Insert:
    table = metadata.tables[table_name]
    keys = PRIMARY_KEYS[table_name]
    append_only = bool(table.info.get("append_only"))
    if dialect == "sqlite":
        lite = sqlite.insert(table)
        if append_only:
            return lite.on_conflict_do_nothing(index_elements=keys)
        return lite.on_conflict_do_update(index_elements=keys, set_=_updates(table, lite, keys))
    if dialect == "postgresql":
        pg = postgresql.insert(table)
        if append_only:
            return pg.on_conflict_do_nothing(index_elements=keys)
        return pg.on_conflict_do_update(index_elements=keys, set_=_updates(table, pg, keys))
    raise StoreError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")


def _updates(
    table: Table, statement: sqlite.Insert | postgresql.Insert, keys: tuple[str, ...]
) -> dict[str, Any]:
    return {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
