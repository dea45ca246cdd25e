"""``ctid reconcile``: replay captures into the store (or take a stored day), then print each
call's drift against the PBX's CDRs."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ctid.config import Settings
from ctid.errors import StoreError
from ctid.replay import read_capture_bytes
from ctid.report import display_width
from ctid.store.capture import capture_rows
from ctid.store.cli_args import database_url, parse_day, seat_directory, store_settings
from ctid.store.directory import sync_directory
from ctid.store.migrate import describe_error
from ctid.store.number_protect import NumberKeys, NumberProtector
from ctid.store.queries import (
    day_window,
    load_calls,
    load_calls_by_id,
    load_cdrs,
    load_cdrs_between,
)
from ctid.store.reconcile import CDR_WINDOW_S, CallDrift, Status, reconcile
from ctid.store.runtime import open_engine, open_existing
from ctid.store.upsert import write_rows
from ctid.tracker.endpoints import EndpointDirectory

COLUMNS = (
    "linkedid",
    "seat",
    "talk_seconds",
    "hold_seconds",
    "ring_seconds",
    "billsec",
    "expected_billsec",
    "raw_drift",
    "drift",
    "status",
    "reasons",
)
WRITE_CHUNK_ROWS = 2000


def reconcile_command(args: argparse.Namespace, settings: Settings) -> int:
    trunks = [t for pbx in settings.pbx for t in pbx.trunks]
    directory = EndpointDirectory(settings.seat_map(), trunks)
    url = database_url(args, settings)
    if args.files:
        pbx = args.pbx or (settings.pbx[0].name if settings.pbx else "pbx")
        numbers = NumberKeys.from_settings(settings)
        auto = store_settings(settings).auto_upgrade
        engine = open_engine(url, auto_upgrade=auto, numbers=numbers)
        try:
            sync_directory(engine, seat_directory(settings), [pbx])
            results = reconcile_files(engine, args.files, pbx, directory, numbers.protector())
        finally:
            engine.dispose()
    else:
        day = parse_day(args.date, settings)
        engine = open_existing(url)
        try:
            results = reconcile_day(engine, day, settings, directory)
        finally:
            engine.dispose()
    shown = [r for r in results if r.flagged] if args.flagged else results
    emit(args.format, shown, summary(results))
    return 0


def reconcile_files(
    engine: Engine,
    files: Sequence[Path],
    pbx: str,
    directory: EndpointDirectory,
    numbers: NumberProtector,
) -> list[CallDrift]:
    """Store what the captures hold (idempotently), then reconcile it as read back."""
    capture = capture_rows([read_capture_bytes(p) for p in files], pbx=pbx, directory=directory)
    call_ids = [c.linkedid for c in capture.replay.calls if c.ended_at is not None]
    cdr_ids = {c.linkedid or c.uniqueid for c in capture.cdrs}
    try:
        rows = [row for unit in capture.units for row in unit]
        for offset in range(0, len(rows), WRITE_CHUNK_ROWS):
            write_rows(engine, rows[offset : offset + WRITE_CHUNK_ROWS], numbers)
        with engine.connect() as connection:
            calls = load_calls_by_id(connection, pbx, call_ids)
            cdrs = load_cdrs(connection, pbx, cdr_ids | set(call_ids))
    except SQLAlchemyError as err:
        raise StoreError(f"database: {describe_error(err)}") from err
    return reconcile(calls, cdrs, directory)


def reconcile_day(
    engine: Engine, day: dt.date, settings: Settings, directory: EndpointDirectory
) -> list[CallDrift]:
    """Calls that started on a local day, against the CDRs posted while they ran."""
    start, end = day_window(day, settings.site.tz)
    late = dt.timedelta(seconds=CDR_WINDOW_S[1])
    try:
        with engine.connect() as connection:
            found = load_calls(connection, start, end)
            cdrs = load_cdrs_between(connection, start, end + late)
    except SQLAlchemyError as err:
        raise StoreError(f"database: {describe_error(err)}") from err
    begin, stop = start.timestamp(), end.timestamp()
    calls = [c for c in found if begin <= c.started_at < stop]
    return reconcile(calls, cdrs, directory)


def summary(results: Sequence[CallDrift]) -> dict[str, Any]:
    statuses = Counter(str(r.status) for r in results)
    billed = [r for r in results if r.status in (Status.MATCH, Status.EXPLAINED, Status.DRIFT)]
    mean = sum(abs(r.drift) for r in billed) / len(billed) if billed else 0.0
    return {
        "calls": len(results),
        "flagged": sum(1 for r in results if r.flagged),
        "statuses": dict(sorted(statuses.items())),
        "mean_abs_drift_seconds": round(mean, 3),
    }


def row(result: CallDrift) -> dict[str, Any]:
    return {
        "pbx": result.pbx,
        "linkedid": result.linkedid,
        "seat": result.seat,
        "talk_seconds": round(result.talk_seconds, 3),
        "hold_seconds": round(result.hold_seconds, 3),
        "ring_seconds": round(result.ring_seconds, 3),
        "billsec": result.billsec,
        "expected_billsec": round(result.expected_billsec, 3),
        "raw_drift": round(result.raw_drift, 3),
        "drift": round(result.drift, 3),
        "tolerance": result.tolerance,
        "status": str(result.status),
        "flagged": result.flagged,
        "reasons": list(result.reasons),
        "cdrs": result.cdrs,
    }


def emit(fmt: str, results: Sequence[CallDrift], totals: dict[str, Any]) -> None:
    rows = [row(r) for r in results]
    if fmt == "json":
        document = {"summary": totals, "calls": rows}
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        return
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow([" ".join(r[c]) if c == "reasons" else r[c] for c in COLUMNS])
        sys.stdout.write(out.getvalue())
        return
    sys.stdout.write(table(rows))
    sys.stdout.flush()
    statuses = ", ".join(f"{n} {s}" for s, n in totals["statuses"].items())
    print(
        f"{totals['calls']} calls ({statuses}); {totals['flagged']} flagged; "
        f"mean |drift| {totals['mean_abs_drift_seconds']:.2f} s",
        file=sys.stderr,
    )


def table(rows: list[dict[str, Any]]) -> str:
    header = ("linkedid", "seat", "talk", "hold", "ring", "billsec", "expect", "raw", "drift",
              "status", "reasons")  # fmt: skip
    cells = [header] + [
        (
            r["linkedid"], r["seat"] or "-", f"{r['talk_seconds']:.1f}",
            f"{r['hold_seconds']:.1f}", f"{r['ring_seconds']:.1f}", str(r["billsec"]),
            f"{r['expected_billsec']:.1f}", f"{r['raw_drift']:+.1f}", f"{r['drift']:+.1f}",
            r["status"] + (" !" if r["flagged"] else ""), ",".join(r["reasons"]),
        )
        for r in rows
    ]  # fmt: skip
    widths = [max(display_width(c[i]) for c in cells) for i in range(len(header))]
    lines = []
    for c in cells:
        padded = [
            v + " " * (w - display_width(v)) if i in (0, 1, 9, 10) else v.rjust(w)
            for i, (v, w) in enumerate(zip(c, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
