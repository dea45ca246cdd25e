"""Handlers of ``ctid db upgrade`` and ``ctid report daily|weekly|dekad|monthly`` (parsers in
:mod:`ctid.store.cli`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ctid.config import Settings
from ctid.errors import InputError, StoreError
from ctid.policy.leaderboard import Board
from ctid.policy.loader import load_policy
from ctid.policy.period import AdjustmentSource
from ctid.policy.schema import Policy
from ctid.store.adjustments import adjustments_from
from ctid.store.cli_args import database_url, parse_day, seat_directory
from ctid.store.directory import SeatInfo, load_seats
from ctid.store.engine import redact_url
from ctid.store.migrate import describe_error, head_revision, upgrade
from ctid.store.number_key import load_key
from ctid.store.number_protect import NumberKeys
from ctid.store.number_seal import create_key_file
from ctid.store.period_followups import SeatClaims, read_period_claims
from ctid.store.period_report import (
    DailyTallies,
    QuotaInputs,
    assemble,
    displayed_seats,
    monthly_boards,
    seat_days,
    seat_profiles,
)
from ctid.store.queries import completeness, day_window, rebuild_day
from ctid.store.report_formats import to_csv, to_json, to_table
from ctid.store.report_html import to_html
from ctid.store.reporting import Period, PeriodKind, PeriodReport, period_for
from ctid.store.runtime import open_existing


def db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    url = database_url(args, settings)
    if args.new_number_key:
        load_key(settings.store.number_key_path)  # created if missing, else left as it is
    upgrade(url, numbers=NumberKeys.from_settings(settings))
    print(f"{redact_url(url)}: schema at revision {head_revision()}")
    return 0


def db_keygen(args: argparse.Namespace, settings: Settings) -> int:
    """A new Fernet key for ``[store] number_encryption_key_file``; never overwrites."""
    del settings  # the key goes where the operator says, then into the config
    create_key_file(args.file)
    print(f"{args.file}: new number encryption key (mode 0600); back it up apart from the database")
    return 0


def report_command(args: argparse.Namespace, settings: Settings) -> int:
    report, policy = period_report(args, settings, args.period)
    boards = monthly_boards(report, policy) if policy and args.period == "monthly" else []
    emit(render(report, args.format, boards), args.output)
    return 0


def period_report(
    args: argparse.Namespace, settings: Settings, kind: PeriodKind
) -> tuple[PeriodReport, Policy | None]:
    """The period of ``--date`` from the store, judged by the policy when there is one."""
    period = period_for(kind, parse_day(args.date, settings))
    policy_file: Path | None = args.policy or settings.policy.file
    policy = load_policy(policy_file) if policy_file is not None else None  # PolicyError: 1 line
    # Quota days are the policy sites' local days; without a policy, the main config's.
    main_zone = next(iter(policy.sites.values())).timezone if policy else settings.site.timezone
    zones = sorted({site.timezone for site in policy.sites.values()}) if policy else [main_zone]
    effective = policy.effective_call_seconds if policy else settings.site.effective_call_seconds
    engine = open_existing(database_url(args, settings))
    try:
        directory = load_seats(engine) | {s.seat: s for s in seat_directory(settings)}
        tallies = {zone: read_days(engine, period, ZoneInfo(zone), effective) for zone in zones}
        shares = period_completeness(engine, period, ZoneInfo(main_zone))
        adjustments = adjustments_from(engine, period.first)
        claims: dict[str, SeatClaims] = {}
        if policy is not None:
            counted, tz = list(period.days()), ZoneInfo(main_zone)
            claims = read_period_claims(engine, counted, tz, effective)
    finally:
        engine.dispose()
    seen = {seat for days in tallies.values() for day in days.values() for seat in day}
    seats, quota_inputs = directory, None
    zone_of: dict[str, str] = {}
    if policy is not None:
        seen |= set(claims)
        seats, zone_of, quota_inputs = _policy_view(policy, directory, seen, adjustments, claims)
    _check_team(args.team, {seats[s].team if s in seats else "default" for s in set(seats) | seen})
    report = assemble(
        period,
        seat_days(tallies, zone_of, main_zone),
        seats,
        timezone=", ".join(zones),
        completeness=shares,
        team=args.team,
        quota_inputs=quota_inputs,
    )
    return report, policy


def _policy_view(
    policy: Policy,
    directory: dict[str, SeatInfo],
    seen: set[str],
    adjustments: AdjustmentSource,
    claims: dict[str, SeatClaims],
) -> tuple[dict[str, SeatInfo], dict[str, str], QuotaInputs]:
    """Seats as the policy sees them, each seat's time zone, and what quotas are judged with."""
    profiles = seat_profiles(policy, directory, seen)
    zone_of = {seat: policy.sites[p.site].timezone for seat, p in profiles.items()}
    inputs = QuotaInputs(policy, profiles, adjustments, claims)
    return displayed_seats(directory, profiles), zone_of, inputs


def read_days(engine: Engine, period: Period, tz: ZoneInfo, effective: float) -> DailyTallies:
    return {day: rebuild_day(engine, day, tz, effective) for day in period.days()}


def _check_team(team: str | None, teams: set[str]) -> None:
    if team and team not in teams:
        known = ", ".join(sorted(teams)) or "none"
        raise InputError(f"--team {team!r}: no such team (known: {known})")


def render(report: PeriodReport, fmt: str, boards: Sequence[Board] = ()) -> str:
    renderers = {"json": to_json, "csv": to_csv, "html": to_html, "table": to_table}
    return renderers[fmt](report, boards)


def emit(text: str, output: Path | None) -> None:
    """To stdout, or to ``--output`` (UTF-8: names like 张伟 must survive any locale)."""
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as err:
        raise InputError(f"--output {output}: cannot write ({err.strerror})") from err


def period_completeness(engine: Engine, period: Period, tz: ZoneInfo) -> dict[str, float]:
    """Per PBX, the share of the period its AMI link was up (from the gaps table)."""
    start, _ = day_window(period.first, tz)
    _, end = day_window(period.through, tz)
    try:
        with engine.connect() as connection:
            return completeness(connection, start, end)
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
