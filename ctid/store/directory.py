"""Who the seats and PBXs are: copied from the config into the store, read back by reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from ctid.errors import StoreError
from ctid.store.migrate import describe_error
from ctid.store.schema import seats
from ctid.store.upsert import upsert_statement


@dataclass(frozen=True, slots=True)
class SeatInfo:
    seat: str
    name: str = ""
    team: str = "default"
    kind: str = "human"
    hire_date: dt.date | None = None


def sync_directory(
    engine: Engine, seat_infos: Iterable[SeatInfo], pbx_names: Iterable[str]
) -> None:
    """Upsert the configured seats and PBXs (blocking), so reports know names and teams.

    Seats no longer configured stay: their history still belongs to them.
    """
    now = dt.datetime.now(dt.UTC)
    seat_rows = [
        {
            "seat": s.seat,
            "name": s.name,
            "team": s.team,
            "kind": s.kind,
            "hire_date": s.hire_date,
            "updated_at": now,
        }
        for s in seat_infos
    ]
    pbx_rows = [{"name": name, "host": None, "updated_at": now} for name in pbx_names]
    try:
        with engine.begin() as connection:
            dialect = connection.dialect.name
            if seat_rows:
                connection.execute(upsert_statement(dialect, "seats"), seat_rows)
            if pbx_rows:
                connection.execute(upsert_statement(dialect, "pbxs"), pbx_rows)
    except SQLAlchemyError as err:
        raise StoreError(f"cannot write the seat directory: {describe_error(err)}") from err


def load_seats(engine: Engine) -> dict[str, SeatInfo]:
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(seats)).all()
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
    return {r.seat: SeatInfo(r.seat, r.name, r.team, r.kind, r.hire_date) for r in rows}
