"""The ``ctid violations`` command: a day's stored violations as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError

from ctid.config import Settings
from ctid.errors import StoreError
from ctid.store.cli_args import database_url, parse_day
from ctid.store.migrate import describe_error
from ctid.store.number_seal import Sealer, required_sealer, sealer_for
from ctid.store.queries import day_window
from ctid.store.runtime import open_existing
from ctid.store.violations import Violation, dialled_numbers, load_violations

FIELDS = (
    "at",
    "pbx",
    "linkedid",
    "seat",
    "team",
    "rule",
    "mode",
    "action",
    "outcome",
    "number",
    "policy_version",
    "reason",
)
TABLE_COLUMNS = (
    "time",
    "rule",
    "mode",
    "action",
    "outcome",
    "seat",
    "team",
    "number",
    "policy",
    "reason",
)


def violations_command(args: argparse.Namespace, settings: Settings) -> int:
    tz = settings.site.tz
    day = parse_day(args.date, settings)
    start, end = day_window(day, tz)
    # Full numbers come only from the calls' sealed copies, with the encryption key: asked
    # for on the command line, its absence is an error; by show_numbers alone, numbers stay
    # masked.
    sealer: Sealer | None = None
    if args.show_numbers:
        sealer = required_sealer(settings.store, "--show-numbers")
    elif settings.show_numbers:
        sealer = sealer_for(settings.store)
    engine = open_existing(database_url(args, settings))
    try:
        with engine.connect() as connection:
            found = load_violations(connection, start, end, seat=args.seat, rule=args.rule)
            numbers = dialled_numbers(connection, found, sealer) if sealer else {}
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
    finally:
        engine.dispose()
    records = [record(v, numbers) for v in found]
    if args.format == "json":
        document = {"date": day.isoformat(), "timezone": str(tz), "violations": records}
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    elif args.format == "csv":
        sys.stdout.write(to_csv(records))
    else:
        sys.stdout.write(to_table(records, tz) or f"no violations on {day.isoformat()}\n")
    return 0


def record(violation: Violation, numbers: dict[tuple[str, str], str]) -> dict[str, Any]:
    """One violation as flat JSON values; the number in full only if ``numbers`` has it."""
    detail = violation.detail
    key = (violation.pbx or "", violation.linkedid or "")
    return {
        "at": violation.at.isoformat(),
        "pbx": violation.pbx,
        "linkedid": violation.linkedid,
        "seat": violation.seat,
        "team": detail.get("team"),
        "rule": violation.rule,
        "mode": detail.get("mode", violation.severity),
        "action": detail.get("action"),
        "outcome": detail.get("outcome"),
        "number": numbers.get(key, detail.get("number")),
        "policy_version": detail.get("policy_version"),
        "reason": detail.get("reason"),
    }


def outcome_text(outcome: dict[str, Any] | None) -> str:
    if outcome is None:
        return "-"  # no AMI action: recorded, or warned
    return f"{'ok' if outcome.get('ok') else 'failed'}: {outcome.get('detail', '')}"


def to_csv(records: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for item in records:
        writer.writerow(item | {"outcome": outcome_text(item["outcome"])})
    return out.getvalue()


def to_table(records: list[dict[str, Any]], tz: ZoneInfo) -> str:
    if not records:
        return ""
    rows = [TABLE_COLUMNS]
    for item in records:
        local = dt.datetime.fromisoformat(item["at"]).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        cells = (item["rule"], item["mode"], item["action"], outcome_text(item["outcome"]))
        who = (item["seat"], item["team"], item["number"], item["policy_version"])
        rows.append((local, *cells, *(str(value or "-") for value in who), item["reason"] or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"
