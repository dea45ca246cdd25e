"""``ctid policy check`` and ``ctid report today``: the quota policy on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from ctid.config import Settings, load_settings
from ctid.errors import InputError


def register(sub: Any, report: Any) -> None:
    """Add ``policy check`` to ``sub`` (top-level subparsers) and ``today`` to ``report``."""
    policy = sub.add_parser("policy", help="quota policy files", description="Quota policy files.")
    policy_sub = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = policy_sub.add_parser(
        "check",
        help="validate a policy file",
        description="Validate a quota policy file (docs/policy.md); print every problem as "
        "FILE:LINE: KEY: MESSAGE and exit 1 if there is one.",
    )
    check.add_argument("file", type=Path, metavar="FILE", help="policy TOML file")
    check.set_defaults(handler=_policy_check)

    today = report.add_parser(
        "today",
        help="today's quota report, from the running daemon or recorded AMI streams",
        description="Without FILE: ask the running daemon (URL and token from [http]) for "
        "today's per-team quota report as of now and print it. With capture FILEs: replay them "
        "through the quota engine and write the report (quota-YYYY-MM-DD.csv and .json) as of "
        "now, or as of --at.",
    )
    today.add_argument("files", nargs="*", type=Path, metavar="FILE", help="capture files")
    today.add_argument("--url", help="daemon URL (default: from [http] host and port)")
    today.add_argument(
        "--format", choices=("table", "json"), default="table", help="from the daemon: output"
    )
    today.add_argument("--config", type=Path, help="TOML configuration (seats, trunks, site)")
    today.add_argument("--policy", type=Path, help="policy file (default: [policy] file)")
    today.add_argument("--out", type=Path, help="output directory (default: [policy] report_dir)")
    today.add_argument(
        "--at", type=datetime.fromisoformat, help="report moment, ISO 8601 with offset"
    )
    today.set_defaults(handler=_report_today)


def _policy_check(args: argparse.Namespace) -> int:
    from ctid.policy import check_policy

    problems = check_policy(args.file)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{args.file}: ok")
    return 1 if problems else 0


def _report_today(args: argparse.Namespace) -> int:
    from ctid.policy import Adjustments, QuotaEngine, load_policy, report_today, resolve_seats
    from ctid.policy.scheduler import SystemClock
    from ctid.replay import replay_files
    from ctid.tracker.endpoints import EndpointDirectory
    from ctid.tracker.model import CallEnded

    if not args.files:
        return _report_from_daemon(args)
    settings: Settings = load_settings(args.config)
    policy_file = args.policy or settings.policy.file
    if policy_file is None:
        raise InputError("no policy file: give --policy or set [policy] file")
    policy = load_policy(policy_file)
    clock = _FixedClock(args.at) if args.at else SystemClock()
    engine = QuotaEngine(
        policy,
        resolve_seats(policy, {seat.id: seat for seat in settings.seats}),
        Adjustments(),
        start=clock.now(),
    )
    trunks = [t for pbx in settings.pbx for t in pbx.trunks]
    result = replay_files(args.files, directory=EndpointDirectory(settings.seat_map(), trunks))
    for call in result.calls:
        if call.ended_at is not None:
            engine.apply(CallEnded(call))
    for path in report_today(engine, clock, args.out or settings.policy.report_dir):
        print(path)
    return 0


def _report_from_daemon(args: argparse.Namespace) -> int:
    from ctid.daemon_client import call_daemon
    from ctid.policy.eod_table import eod_table

    for option in ("policy", "out", "at"):
        if getattr(args, option) is not None:
            raise InputError(f"--{option} needs capture FILEs (the daemon uses its own)")
    document = call_daemon(args.config, args.url, "GET", "/api/quota/today")
    if args.format == "json":
        print(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        print(eod_table(document), end="")
    return 0


class _FixedClock:
    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise InputError("--at needs a UTC offset, e.g. 2026-11-23T17:50+08:00")
        self._at = at

    def now(self) -> datetime:
        return self._at
