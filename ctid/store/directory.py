"""Who the seats, PBXs, sites and teams are: copied from the config into the store, read
back by reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from ctid.errors import StoreError
from ctid.store.migrate import describe_error
from ctid.store.schema import seats
from ctid.store.upsert import upsert_statement

if TYPE_CHECKING:
    from ctid.config import Settings
    from ctid.policy.schema import Policy


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
    _upsert(engine, {"seats": seat_rows, "pbxs": pbx_rows}, "the seat directory")


def load_seats(engine: Engine) -> dict[str, SeatInfo]:
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(seats)).all()
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
    return {r.seat: SeatInfo(r.seat, r.name, r.team, r.kind, r.hire_date) for r in rows}


@dataclass(frozen=True, slots=True)
class Places:
    """The sites (name → time zone) and teams ((site, team) → leader or ``None``)."""

    sites: dict[str, str]
    teams: dict[tuple[str, str], str | None]


def configured_places(settings: Settings, policy: Policy | None = None) -> Places:
    """The ``[site]`` section and the teams of ``[[seats]]``, with the quota policy's sites and
    teams when there is one (a team then belongs to the policy's site for it)."""
    sites = {settings.site.name: settings.site.timezone}
    teams: dict[tuple[str, str], str | None] = {}

    def site_of(team: str) -> str:
        return policy.site_of_team(team) if policy is not None else settings.site.name

    for seat in settings.seats:
        teams[(site_of(seat.team), seat.team)] = None
    if policy is not None:
        sites |= {name: site.timezone for name, site in policy.sites.items()}
        for name, team in policy.teams.items():
            teams[(site_of(name), name)] = team.leader or None
    return Places(sites, teams)


def load_places(settings: Settings) -> Places:
    """:func:`configured_places`, reading ``[policy] file`` if set (blocking; a bad policy
    file is a :class:`ctid.errors.PolicyError`, as when the daemon loads it)."""
    from ctid.policy.loader import load_policy  # only when a policy is configured

    file = settings.policy.file
    return configured_places(settings, load_policy(file) if file is not None else None)


def sync_places(engine: Engine, places: Places) -> None:
    """Upsert the configured sites and teams (blocking); ones no longer configured stay."""
    now = dt.datetime.now(dt.UTC)
    site_rows = [
        {"name": name, "timezone": zone, "updated_at": now} for name, zone in places.sites.items()
    ]
    team_rows = [
        {"site": site, "name": name, "leader": leader, "updated_at": now}
        for (site, name), leader in places.teams.items()
    ]
    _upsert(engine, {"sites": site_rows, "teams": team_rows}, "the sites and teams")


def _upsert(engine: Engine, rows: dict[str, list[dict[str, Any]]], what: str) -> None:
    """Upsert every table's rows in one transaction; a failure is one :class:`StoreError`."""
    try:
        with engine.begin() as connection:
            for table, values in rows.items():
                if values:
                    connection.execute(upsert_statement(connection.dialect.name, table), values)
    except SQLAlchemyError as err:
        raise StoreError(f"cannot write {what}: {describe_error(err)}") from err
