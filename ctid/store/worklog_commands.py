"""``ctid report worklog``: each seat's day, call by call, with its follow-ups (parser in
:mod:`ctid.store.cli`)."""

from __future__ import annotations

import argparse

from ctid.config import Settings
from ctid.errors import InputError
from ctid.store.cli_args import database_url, parse_day, seat_directory
from ctid.store.commands import emit
from ctid.store.directory import load_seats
from ctid.store.number_seal import required_sealer
from ctid.store.runtime import open_existing
from ctid.store.worklog import build_worklog, read_day, seats_of
from ctid.store.worklog_formats import to_csv, to_html, to_json, to_table


def worklog_command(args: argparse.Namespace, settings: Settings) -> int:
    day = parse_day(args.date, settings)
    tz, threshold = settings.site.tz, settings.site.effective_call_seconds
    reveal = required_sealer(settings.store, "--reveal") if args.reveal else None
    engine = open_existing(database_url(args, settings))
    try:
        found, verdicts, numbers = read_day(engine, day, tz, threshold, reveal)
        directory = load_seats(engine) | {s.seat: s for s in seat_directory(settings)}
    finally:
        engine.dispose()
    active = {s for call in found for s in seats_of(call)} | {v.claim.seat for v in verdicts}
    if args.seat is not None and args.seat not in set(directory) | active:
        raise InputError(f"--seat {args.seat!r}: no such seat in the config, the store or the day")
    log = build_worklog(day, tz, threshold, found, verdicts, directory, numbers, args.seat)
    renderers = {"json": to_json, "csv": to_csv, "html": to_html, "table": to_table}
    emit(renderers[args.format](log), args.output)
    return 0
