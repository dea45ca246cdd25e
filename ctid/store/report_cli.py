"""Parsers of ``ctid report worklog`` and ``ctid report scorecard`` (handlers imported only
when the command runs: ``ctid --help`` must not load SQLAlchemy)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ctid.store.cli import REPORT_FORMATS, with_settings

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(report: Subparsers) -> None:
    _register_worklog(report)
    _register_scorecard(report)


def _common(parser: argparse.ArgumentParser, date_help: str) -> None:
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument(
        "--db", metavar="URL", help="database URL (default: [store] url, else var/ctid.db)"
    )
    parser.add_argument("--date", help=date_help)
    parser.add_argument("--format", choices=REPORT_FORMATS, default="table")
    parser.add_argument(
        "--output", type=Path, metavar="FILE", help="write the report to FILE (default: stdout)"
    )


def _register_worklog(report: Subparsers) -> None:
    parser = report.add_parser(
        "worklog",
        help="each seat's day: calls in time order, customers reached, follow-ups",
        description="Per seat, the customer calls of a local day in time order (time, "
        "direction, masked number, outcome, the seat's talk seconds, effective or not), the "
        "distinct customers it talked with, and the follow-ups it claimed with their "
        "verification.",
    )
    _common(parser, "local day (YYYY-MM-DD; default today)")
    parser.add_argument("--seat", help="only this seat")
    parser.add_argument(
        "--reveal",
        action="store_true",
        help="show the calls' numbers in full, decrypted with the number encryption key "
        "(refused without it; calls stored without a key stay masked)",
    )
    parser.set_defaults(handler=with_settings("ctid.store.worklog_commands", "worklog_command"))


def _register_scorecard(report: Subparsers) -> None:
    parser = report.add_parser(
        "scorecard",
        help="monthly performance points and pay estimate per seat",
        description="Per human seat over the month of --date (counted up to it): performance "
        "points (base, attainment over 100 %%, missed workdays, falsified follow-ups, "
        "violations by rule; bonus and deduction bands) and, with [pay] in the policy, the "
        "pay estimate. Needs a quota policy (--policy or [policy] file).",
    )
    _common(parser, "a day of the month (YYYY-MM-DD; default today); the month's last day "
            "for a whole month")  # fmt: skip
    parser.add_argument("--team", help="only seats of this team")
    parser.add_argument(
        "--policy", type=Path, metavar="FILE", help="quota policy file (default: [policy] file)"
    )
    parser.set_defaults(handler=with_settings("ctid.store.scorecard_commands", "scorecard_command"))
