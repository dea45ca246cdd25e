"""``ctid followups import FILE`` and ``ctid followups report``: CRM claims in, verdicts out."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ctid.config import Settings
from ctid.errors import StoreError
from ctid.report import aligned_rows, ruled
from ctid.store.cli_args import database_url, parse_day, seat_directory
from ctid.store.directory import SeatInfo, load_seats
from ctid.store.followups import read_claims, store_claims
from ctid.store.followups_verify import Verdict, verify_day
from ctid.store.migrate import describe_error
from ctid.store.number_key import hasher_for
from ctid.store.runtime import open_existing

CSV_FIELDS = ("day", "seat", "team", "time", "number", "class", "verified", "reason")


def import_command(args: argparse.Namespace, settings: Settings) -> int:
    hasher = hasher_for(settings)
    claims = read_claims(args.file, hasher, settings.site.tz)  # all read before any is stored
    engine = open_existing(database_url(args, settings))
    try:
        summary = store_claims(
            engine, claims, hasher, settings.site.tz, source=f"csv:{args.file.name}"
        )
    finally:
        engine.dispose()
    print(f"{args.file}: {summary.added} follow-ups added, {summary.duplicates} duplicates")
    return 0


@dataclass(frozen=True, slots=True)
class SeatFollowUps:
    seat: str
    info: SeatInfo
    verdicts: list[Verdict]

    @property
    def verified(self) -> int:
        return sum(1 for v in self.verdicts if v.verified)


def report_command(args: argparse.Namespace, settings: Settings) -> int:
    day = parse_day(args.date, settings)
    threshold = settings.site.effective_call_seconds
    engine = open_existing(database_url(args, settings))
    try:
        with engine.connect() as connection:
            verdicts = verify_day(connection, day, settings.site.tz, threshold)
        directory = load_seats(engine) | {s.seat: s for s in seat_directory(settings)}
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
    finally:
        engine.dispose()
    seats = per_seat(verdicts, directory)
    tz = settings.site.tz
    if args.format == "json":
        text = to_json(day, threshold, seats, tz)
    elif args.format == "csv":
        text = to_csv(day, seats, tz)
    else:
        text = to_table(day, threshold, seats, tz)
    sys.stdout.write(text)
    return 0


def per_seat(verdicts: Sequence[Verdict], directory: Mapping[str, SeatInfo]) -> list[SeatFollowUps]:
    grouped: dict[str, list[Verdict]] = {}
    for verdict in verdicts:
        grouped.setdefault(verdict.claim.seat, []).append(verdict)
    return [
        SeatFollowUps(seat, directory.get(seat, SeatInfo(seat)), grouped[seat])
        for seat in sorted(grouped)
    ]


def _time(at: dt.datetime, tz: dt.tzinfo) -> str:
    return at.astimezone(tz).isoformat(timespec="seconds")


def to_json(day: dt.date, threshold: float, seats: list[SeatFollowUps], tz: dt.tzinfo) -> str:
    document: dict[str, Any] = {
        "date": day.isoformat(),
        "threshold_seconds": threshold,
        "seats": [
            {
                "seat": s.seat,
                "name": s.info.name,
                "team": s.info.team,
                "claimed": len(s.verdicts),
                "verified": s.verified,
                "unverified": [
                    {
                        "time": _time(v.claim.at, tz),
                        "number": v.claim.number_masked,
                        "class": v.claim.klass,
                        "reason": v.reason,
                    }
                    for v in s.verdicts
                    if not v.verified
                ],
            }
            for s in seats
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def to_csv(day: dt.date, seats: list[SeatFollowUps], tz: dt.tzinfo) -> str:
    """One row per claim, verified or not."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for s in seats:
        for v in s.verdicts:
            writer.writerow(
                [
                    day.isoformat(), s.seat, s.info.team, _time(v.claim.at, tz),
                    v.claim.number_masked, v.claim.klass or "", str(v.verified).lower(),
                    v.reason or "",
                ]
            )  # fmt: skip
    return out.getvalue()


def to_table(day: dt.date, threshold: float, seats: list[SeatFollowUps], tz: dt.tzinfo) -> str:
    lines = [
        f"Follow-ups of {day.isoformat()}: verified = the seat's answered call with the number "
        f"that day, talk >= {threshold:g} s",
        "",
    ]
    if not seats:
        return "\n".join([*lines, "no follow-ups claimed"]) + "\n"
    header = ("seat", "name", "team", "claimed", "verified", "unverified")
    body = [
        (s.seat, s.info.name, s.info.team, str(len(s.verdicts)), str(s.verified),
         str(len(s.verdicts) - s.verified))
        for s in seats
    ]  # fmt: skip
    lines += ruled(aligned_rows([header, *body], left={0, 1, 2}))
    unverified = [
        (s.seat, v.claim.at.astimezone(tz).strftime("%H:%M:%S"), v.claim.number_masked,
         v.claim.klass or "", v.reason or "")
        for s in seats
        for v in s.verdicts
        if not v.verified
    ]  # fmt: skip
    if unverified:
        columns = ("seat", "time", "number", "class", "reason")
        lines += [
            "",
            "Unverified:",
            *ruled(aligned_rows([columns, *unverified], left={0, 2, 3, 4})),
        ]
    return "\n".join(lines) + "\n"
