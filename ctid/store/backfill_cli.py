"""``ctid backfill``: after the fact, add the calls that ended inside recorded AMI gaps from
the PBX's ``Master.csv``, and tell how complete ctid's own record of the window is."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ctid.config import Settings
from ctid.errors import InputError
from ctid.store.backfill import BackfillReport, backfill
from ctid.store.cli_args import database_url
from ctid.store.number_protect import NumberKeys
from ctid.store.runtime import open_existing
from ctid.tracker.endpoints import EndpointDirectory

DEFAULT_SPAN = dt.timedelta(days=1)


@dataclass(frozen=True)
class Target:
    pbx: str
    csv: Path
    trunks: tuple[str, ...]


def backfill_command(args: argparse.Namespace, settings: Settings) -> int:
    tz = settings.site.tz
    until = parse_instant(args.until, tz, end_of_day=True) if args.until else time.time()
    since = parse_instant(args.since, tz) if args.since else until - DEFAULT_SPAN.total_seconds()
    if since >= until:
        raise InputError("--since must be before --until")
    engine = open_existing(database_url(args, settings))
    numbers = NumberKeys.from_settings(settings)
    try:
        reports = [
            backfill(
                engine,
                pbx=target.pbx,
                csv_path=target.csv,
                directory=EndpointDirectory(settings.seat_map(), target.trunks),
                since=since,
                until=until,
                tz=tz,
                numbers=numbers,
            )
            for target in targets(args, settings)
        ]
    finally:
        engine.dispose()
    emit(args.format, reports, tz)
    return 0


def targets(args: argparse.Namespace, settings: Settings) -> list[Target]:
    """Which PBXs and files: ``--pbx``/``--csv``, else every PBX with ``cdr_csv`` set."""
    configured = {pbx.name: pbx for pbx in settings.pbx}
    name: str | None = args.pbx
    if name is None and args.csv is not None:
        if len(configured) > 1:
            raise InputError("several PBXs are configured: name one with --pbx")
        name = next(iter(configured), "pbx")
    if name is not None:
        pbx = configured.get(name)
        csv = args.csv or (pbx.cdr_csv if pbx is not None else None)
        if csv is None:
            raise InputError(f"pbx {name!r}: no cdr_csv configured; pass --csv FILE")
        return [Target(name, csv, tuple(pbx.trunks) if pbx is not None else ())]
    found = [Target(p.name, p.cdr_csv, tuple(p.trunks)) for p in settings.pbx if p.cdr_csv]
    if not found:
        raise InputError("no [[pbx]] has cdr_csv set: pass --csv FILE (and --pbx NAME)")
    return found


def parse_instant(text: str, tz: ZoneInfo, *, end_of_day: bool = False) -> float:
    """``YYYY-MM-DD`` (that local day's start, or its end) or an ISO date and time (local
    unless it names an offset)."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text) + dt.timedelta(days=1 if end_of_day else 0)
            return dt.datetime.combine(day, dt.time(), tzinfo=tz).timestamp()
        moment = dt.datetime.fromisoformat(text)
    except ValueError as err:
        raise InputError(f"{text!r}: not a date or time, use YYYY-MM-DD[THH:MM[:SS]]") from err
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).timestamp()


def as_dict(report: BackfillReport, tz: ZoneInfo) -> dict[str, Any]:
    ratio = report.completeness
    return {
        "pbx": report.pbx,
        "since": _iso(report.since, tz),
        "until": _iso(report.until, tz),
        "gaps": [{"started_at": _iso(a, tz), "ended_at": _iso(b, tz)} for a, b in report.gaps],
        "offset_seconds": report.offset,
        "offset_source": report.offset_source,
        "external_calls": report.external_calls,
        "tracked": report.tracked,
        "backfilled_before": report.backfilled_before,
        "missing_outside_gaps": report.missing_outside_gaps,
        "completeness": None if ratio is None else round(ratio, 4),
        "added": [
            {
                "linkedid": call.linkedid,
                "direction": str(call.direction),
                "seat": call.seat,
                "outcome": str(call.outcome),
                "talk_seconds": call.talk_seconds,
                "started_at": _iso(call.started_at, tz),
                "ended_at": _iso(call.ended_at or call.started_at, tz),
            }
            for call in report.added
        ],
    }


def emit(fmt: str, reports: Sequence[BackfillReport], tz: ZoneInfo) -> None:
    documents = [as_dict(r, tz) for r in reports]
    if fmt == "json":
        sys.stdout.write(json.dumps({"pbxs": documents}, ensure_ascii=False, indent=2) + "\n")
        return
    for doc in documents:
        ratio = doc["completeness"]
        share = "-" if ratio is None else f"{ratio:.1%}"
        gaps = len(doc["gaps"])
        print(
            f"{doc['pbx']}: {gaps} gap{'' if gaps == 1 else 's'}; "
            f"{doc['external_calls']} external calls in "
            f"Master.csv, {doc['tracked']} measured by ctid ({share}), "
            f"{doc['backfilled_before']} backfilled before, {len(doc['added'])} added, "
            f"{doc['missing_outside_gaps']} missing outside gaps"
        )
        for call in doc["added"]:
            print(
                f"  + {call['linkedid']}  {call['direction']:<8}  {call['seat'] or '-':<8}  "
                f"{call['outcome']:<10}  {call['talk_seconds']:>6.0f} s  {call['ended_at']}"
            )


def _iso(epoch: float, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(epoch, tz).isoformat(timespec="seconds")
