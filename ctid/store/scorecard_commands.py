"""``ctid report scorecard``: the month's performance points and pay estimate per human seat
(parser in :mod:`ctid.store.report_cli`)."""

from __future__ import annotations

import argparse
import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ctid.config import Settings
from ctid.errors import InputError, StoreError
from ctid.store.cli_args import database_url
from ctid.store.commands import emit, period_report
from ctid.store.migrate import describe_error
from ctid.store.queries import day_window
from ctid.store.revenue import month_revenue
from ctid.store.runtime import open_existing
from ctid.store.scorecard_report import build_scorecard, render
from ctid.store.violations import load_violations


def scorecard_command(args: argparse.Namespace, settings: Settings) -> int:
    report, policy = period_report(args, settings, "monthly")
    if policy is None:
        raise InputError("report scorecard: needs a quota policy (--policy FILE or [policy] file)")
    period = report.period
    tz = ZoneInfo(next(iter(policy.sites.values())).timezone)
    engine = open_existing(database_url(args, settings))
    try:
        violations = seat_violations(engine, period.first, period.through, tz)
        revenue = month_revenue(engine, period.first, period.through) if policy.pay else {}
    finally:
        engine.dispose()
    card = build_scorecard(report, policy, violations, revenue)
    emit(render(card, args.format), args.output)
    return 0


def seat_violations(
    engine: Engine, first: dt.date, through: dt.date, tz: ZoneInfo
) -> dict[str, Counter[str]]:
    """Per seat, its violations per rule over the local days ``first`` .. ``through``."""
    start, _ = day_window(first, tz)
    _, end = day_window(through, tz)
    try:
        with engine.connect() as connection:
            found = load_violations(connection, start, end)
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
    out: dict[str, Counter[str]] = {}
    for violation in found:
        if violation.seat:
            out.setdefault(violation.seat, Counter())[violation.rule] += 1
    return out
