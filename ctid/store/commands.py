"""Handlers of ``ctid db upgrade`` and ``ctid report daily|weekly|monthly`` (parsers in
:mod:`ctid.store.cli`)."""

from __future__ import annotations

import argparse
import sys
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ctid.config import Settings
from ctid.errors import InputError, StoreError
from ctid.store.cli_args import database_url, parse_day, seat_directory
from ctid.store.directory import load_seats
from ctid.store.engine import redact_url
from ctid.store.migrate import describe_error, head_revision, upgrade
from ctid.store.queries import completeness, day_window, rebuild_days
from ctid.store.reporting import (
    Period,
    PeriodKind,
    build_rows,
    period_for,
    to_csv,
    to_json,
    to_table,
)
from ctid.store.runtime import open_existing


def db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    url = database_url(args, settings)
    upgrade(url)
    print(f"{redact_url(url)}: schema at revision {head_revision()}")
    return 0


def report_command(args: argparse.Namespace, settings: Settings) -> int:
    tz = settings.site.tz
    kind: PeriodKind = args.period
    period = period_for(kind, parse_day(args.date, settings))
    engine = open_existing(database_url(args, settings))
    try:
        totals = rebuild_days(
            engine, period.first, period.last, tz, settings.site.effective_call_seconds
        )
        seats = load_seats(engine) | {s.seat: s for s in seat_directory(settings)}
        shares = period_completeness(engine, period, tz)
    finally:
        engine.dispose()
    teams = {seats[s].team if s in seats else "default" for s in set(totals) | set(seats)}
    if args.team and args.team not in teams:
        known = ", ".join(sorted(teams)) or "none"
        raise InputError(f"--team {args.team!r}: no such team (known: {known})")
    rows = build_rows(period, totals, seats, team=args.team)
    if args.format == "json":
        document = to_json(period, rows, settings.site.timezone, args.team, shares)
        sys.stdout.write(document + "\n")
    elif args.format == "csv":
        sys.stdout.write(to_csv(rows))
    else:
        sys.stdout.write(to_table(period, rows, shares))
    return 0


def period_completeness(engine: Engine, period: Period, tz: ZoneInfo) -> dict[str, float]:
    """Per PBX, the share of the period its AMI link was up (from the gaps table)."""
    start, _ = day_window(period.first, tz)
    _, end = day_window(period.last, tz)
    try:
        with engine.connect() as connection:
            return completeness(connection, start, end)
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
