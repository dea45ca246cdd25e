"""``ctid leads import NAME FILE`` and ``ctid leads coverage NAME``."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ctid.config import Settings
from ctid.errors import InputError, StoreError
from ctid.report import aligned_rows, ruled
from ctid.store.cli_args import database_url, parse_day, seat_directory
from ctid.store.directory import SeatInfo, load_seats
from ctid.store.leads import Coverage, Reach, coverage, import_leads, read_numbers
from ctid.store.migrate import describe_error
from ctid.store.number_key import hasher_for
from ctid.store.runtime import open_existing

DEFAULT_DAYS = 30
"""Without ``--from``: the 30 days ending ``--to``."""
MAX_DAYS = 366
"""Coverage hashes every outbound call of the span: bounded to a year."""


def import_command(args: argparse.Namespace, settings: Settings) -> int:
    hasher = hasher_for(settings)
    numbers = read_numbers(args.file, hasher)  # all read before any is stored
    engine = open_existing(database_url(args, settings))
    try:
        summary = import_leads(engine, args.name, numbers, hasher)
    finally:
        engine.dispose()
    print(
        f"{args.file}: {summary.added} numbers added to {args.name!r}, "
        f"{summary.duplicates} duplicates"
    )
    return 0


def span_of(args: argparse.Namespace, settings: Settings) -> tuple[dt.date, dt.date]:
    last = parse_day(args.to, settings)
    if args.since:
        try:
            first = dt.date.fromisoformat(args.since)
        except ValueError as err:
            raise InputError(f"--from {args.since!r}: not a date, use YYYY-MM-DD") from err
    else:
        first = last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise InputError(f"--from {first} is after --to {last}")
    if (last - first).days >= MAX_DAYS:
        raise InputError(f"--from/--to: at most {MAX_DAYS} days")
    return first, last


def coverage_command(args: argparse.Namespace, settings: Settings) -> int:
    span = span_of(args, settings)
    engine = open_existing(database_url(args, settings))
    try:
        directory = load_seats(engine) | {s.seat: s for s in seat_directory(settings)}

        def team_of(seat: str) -> str:
            return directory.get(seat, SeatInfo(seat)).team

        with engine.connect() as connection:
            found = coverage(connection, args.name, span, settings.site.tz, team_of)
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
    finally:
        engine.dispose()
    renderers = {"json": to_json, "csv": to_csv, "table": to_table}
    sys.stdout.write(renderers[args.format](found))
    return 0


def _share(count: int, of: int) -> float | None:
    return None if of == 0 else count / of


def _record(label: str, reach: Reach, numbers: int) -> dict[str, Any]:
    dialled, answered = len(reach.dialled), len(reach.answered)
    share_d, share_a = _share(dialled, numbers), _share(answered, numbers)
    return {
        "name": label,
        "dialled": dialled,
        "answered": answered,
        "dialled_share": None if share_d is None else round(share_d, 6),
        "answered_share": None if share_a is None else round(share_a, 6),
    }


def _records(found: Coverage) -> list[dict[str, Any]]:
    rows = [_record("all teams", found.centre, found.numbers)]
    rows += [_record(team, found.teams[team], found.numbers) for team in sorted(found.teams)]
    return rows


def to_json(found: Coverage) -> str:
    centre, *teams = _records(found)
    document = {
        "list": found.name,
        "from": found.first.isoformat(),
        "to": found.last.isoformat(),
        "numbers": found.numbers,
        **{k: v for k, v in centre.items() if k != "name"},
        "teams": teams,
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def to_csv(found: Coverage) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("list", "team", "numbers", "dialled", "answered"))
    for row in _records(found):
        writer.writerow((found.name, row["name"], found.numbers, row["dialled"], row["answered"]))
    return out.getvalue()


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f} %"


def to_table(found: Coverage) -> str:
    lines = [
        f"Lead list {found.name!r}: {found.numbers} numbers, outbound calls "
        f"{found.first.isoformat()} to {found.last.isoformat()}",
        "",
    ]
    header = ("team", "dialled", "share", "answered", "share")
    body = [
        (r["name"], str(r["dialled"]), _percent(r["dialled_share"]), str(r["answered"]),
         _percent(r["answered_share"]))
        for r in _records(found)
    ]  # fmt: skip
    lines += ruled(aligned_rows([header, *body], left={0}))
    return "\n".join(lines) + "\n"
