"""The ``ctid purge`` and ``ctid backup`` commands (parsers in :mod:`ctid.store.retention_cli`)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from ctid.config import Settings
from ctid.errors import InputError
from ctid.store.backup import backup_sqlite, pg_dump_hint
from ctid.store.cli_args import database_url, parse_day
from ctid.store.engine import parse_url, redact_url, sqlite_path
from ctid.store.purge import (
    BATCH_PAUSE_S,
    KEPT,
    Cutoff,
    check_cutoff,
    plan,
    purge,
    row_counts,
)
from ctid.store.retention_cli import ProgressLines
from ctid.store.runtime import open_existing


def purge_command(args: argparse.Namespace, settings: Settings) -> int:
    tz = settings.site.tz
    today = parse_day(None, settings)
    day = cutoff_day(args.older_than, args.before, today)
    batch = _positive(args.batch, "--batch")
    check_cutoff(day, today, force=args.force)
    cutoff = Cutoff.of(day, tz)
    engine = open_existing(database_url(args, settings))
    try:
        if args.dry_run:
            deleted = plan(engine, cutoff)
            kept = {name: n - deleted.get(name, 0) for name, n in row_counts(engine).items()}
        else:
            lines = ProgressLines()

            def progress(table: str, done: int, planned: int) -> None:
                lines(f"purge: {table}: {done:,} of {planned:,} rows deleted")

            deleted = purge(
                engine, cutoff, batch_rows=batch, progress=progress, pause_s=BATCH_PAUSE_S
            )
            kept = row_counts(engine)
    finally:
        engine.dispose()
    # Tables the database has, in deletion order, then those never purged.
    summary = {name: {"deleted": deleted.get(name, 0), "kept": n} for name, n in kept.items()}
    if args.format == "json":
        document = {
            "before": day.isoformat(),
            "timezone": str(tz),
            "cutoff": cutoff.at.isoformat(),
            "dry_run": args.dry_run,
            "tables": summary,
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(purge_table(cutoff, str(tz), summary, dry_run=args.dry_run))
    return 0


def cutoff_day(older_than: str | None, before: str | None, today: dt.date) -> dt.date:
    """The first day kept, from ``--older-than DAYS`` or ``--before YYYY-MM-DD``."""
    if (older_than is None) == (before is None):
        raise InputError("give either --older-than DAYS or --before YYYY-MM-DD")
    if older_than is not None:
        days = _positive(older_than, "--older-than", minimum=0)
        return today - dt.timedelta(days=days)
    assert before is not None
    try:
        return dt.date.fromisoformat(before)
    except ValueError as err:
        raise InputError(f"--before {before!r}: not a date, use YYYY-MM-DD") from err


def _positive(text: str, option: str, *, minimum: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum or value > 100_000:
        raise InputError(f"{option} {text!r}: give a whole number from {minimum} to 100000")
    return value


def purge_table(
    cutoff: Cutoff, timezone: str, summary: dict[str, dict[str, int]], *, dry_run: bool
) -> str:
    when = cutoff.at.strftime("%Y-%m-%d %H:%M UTC")
    verb = "would delete" if dry_run else "deleted"
    lines = [
        f"{'dry run: ' if dry_run else ''}rows of days before {cutoff.day.isoformat()} "
        f"({timezone}; before {when})",
        f"{'table':<20}{verb:>14}{'kept':>12}",
    ]
    for name, counts in summary.items():
        note = "  (never purged)" if name in KEPT else ""
        lines.append(f"{name:<20}{counts['deleted']:>14,}{counts['kept']:>12,}{note}")
    total = sum(counts["deleted"] for counts in summary.values())
    lines.append(f"{'total':<20}{total:>14,}")
    return "\n".join(lines) + "\n"


def backup_command(args: argparse.Namespace, settings: Settings) -> int:
    url = database_url(args, settings)
    if parse_url(url).get_backend_name() == "postgresql":
        raise InputError(
            "ctid backup copies SQLite databases; for PostgreSQL run "
            f"{pg_dump_hint(url, args.dest)} (see docs/operations.md)"
        )
    source = sqlite_path(url)
    if source is None:
        raise InputError(f"{redact_url(url)}: an in-memory database has nothing to back up")
    lines = ProgressLines()

    def progress(done: int, total: int) -> None:
        lines(f"backup: {done:,} of {total:,} pages ({100 * done // max(total, 1)} %)")

    result = backup_sqlite(source, args.dest, force=args.force, progress=progress)
    print(
        f"{result.path}: {_size(result.size)} ({result.size:,} bytes, {result.pages:,} pages) "
        f"in {result.seconds:.1f} s, integrity check ok"
    )
    return 0


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    for larger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.1f} {unit}"
