"""``ctid db tallies --date D [--rebuild | --check]``: a closed day's per-seat tallies."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Mapping

from ctid.config import Settings
from ctid.errors import InputError
from ctid.store.cli_args import database_url, parse_day
from ctid.store.closing import (
    TALLY_FIELDS,
    ClosedSeat,
    differences,
    load_closed_day,
    store_rebuilt_day,
)
from ctid.store.queries import rebuild_day
from ctid.store.runtime import open_existing
from ctid.tracker.tallies import SeatTally

_HEADINGS = {
    "calls": "calls",
    "outbound": "out",
    "inbound": "in",
    "transfers_in": "transfers",
    "answered": "answered",
    "effective": "effective",
    "talk_seconds": "talk_s",
    "hold_seconds": "hold_s",
    "faxes": "faxes",
    "internal_calls": "internal",
    "internal_talk_seconds": "internal_talk_s",
}


def tallies_command(args: argparse.Namespace, settings: Settings) -> int:
    day = parse_day(args.date, settings)
    today = dt.datetime.fromtimestamp(time.time(), settings.site.tz).date()
    if args.rebuild and day >= today:
        raise InputError(f"--date {day.isoformat()}: the day is not over yet, it cannot be closed")
    rebuilt: dict[str, SeatTally] = {}
    engine = open_existing(database_url(args, settings))
    try:
        if args.rebuild or args.check:
            pbxs = [p.name for p in settings.pbx] or None
            tz, effective = settings.site.tz, settings.site.effective_call_seconds
            rebuilt = rebuild_day(engine, day, tz, effective, pbxs)
        if args.rebuild:
            store_rebuilt_day(engine, day, rebuilt)
        stored = load_closed_day(engine, day)
    finally:
        engine.dispose()
    if not stored and not (args.rebuild and not rebuilt):
        raise InputError(
            f"{day.isoformat()}: not closed, no tallies are stored for that day "
            f"(`ctid db tallies --date {day.isoformat()} --rebuild` closes it from its calls)"
        )
    if args.check:
        return _check(day, {seat: s.tally for seat, s in stored.items()}, rebuilt, args.format)
    print(_render(day, stored, args.format), end="")
    return 0


def _check(
    day: dt.date, stored: Mapping[str, SeatTally], rebuilt: Mapping[str, SeatTally], fmt: str
) -> int:
    found = differences(stored, rebuilt)
    if fmt == "json":
        print(json.dumps({"day": day.isoformat(), "match": not found, "differences": found}))
    elif found:
        print(f"{day.isoformat()}: stored tallies differ from the stored calls")
        for line in found:
            print(f"  {line}")
    else:
        print(f"{day.isoformat()}: {len(stored)} seats, stored tallies match the stored calls")
    return 1 if found else 0


def _render(day: dt.date, stored: Mapping[str, ClosedSeat], fmt: str) -> str:
    if fmt == "json":
        seats = {
            seat: {**s.tally.as_dict(), "source": s.source, "closed_at": s.closed_at.isoformat()}
            for seat, s in sorted(stored.items())
        }
        return json.dumps({"day": day.isoformat(), "seats": seats}, ensure_ascii=False) + "\n"
    header = ["seat", *(_HEADINGS[name] for name in TALLY_FIELDS), "source", "closed_at"]
    lines = [header]
    for seat, closed in sorted(stored.items()):
        values = [_cell(getattr(closed.tally, name)) for name in TALLY_FIELDS]
        closed_at = closed.closed_at.isoformat(timespec="seconds")
        lines.append([seat, *values, closed.source, closed_at])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rows = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return f"{day.isoformat()} (closed)\n" + "\n".join(row.rstrip() for row in rows) + "\n"


def _cell(value: float) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
