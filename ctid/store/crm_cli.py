"""``ctid followups import|report`` and ``ctid leads import|coverage``: parsers only.

``ctid --help`` must not import SQLAlchemy: the commands live in
:mod:`ctid.store.followups_commands` and :mod:`ctid.store.leads_commands`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ctid.store.cli import FORMATS, with_settings

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

FOLLOWUPS = "ctid.store.followups_commands"
LEADS = "ctid.store.leads_commands"


def register(sub: Subparsers) -> None:
    _register_followups(sub)
    _register_leads(sub)
    _register_revenue(sub)


def _register_revenue(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "revenue",
        help="revenue per seat for the monthly pay estimate",
        description="Revenue per seat, imported from a CSV file, for the pay estimate of "
        "ctid report scorecard.",
    )
    actions = parser.add_subparsers(dest="revenue_command", metavar="ACTION", required=True)
    imports = actions.add_parser(
        "import",
        help="store the amounts of a CSV file",
        description="Store the amounts of a CSV file with columns seat, amount and either "
        "date (YYYY-MM-DD) or month (YYYY-MM). All or nothing; rows of one seat and day (or "
        "month) are summed, and importing again replaces that seat's amount for the day.",
    )
    imports.add_argument("file", type=Path, metavar="FILE.csv")
    _common(imports)
    imports.set_defaults(handler=with_settings("ctid.store.revenue", "import_command"))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument(
        "--db", metavar="URL", help="database URL (default: [store] url, else var/ctid.db)"
    )


def _register_followups(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "followups",
        help="follow-ups claimed in the CRM, checked against the calls",
        description="Import the follow-ups seats claim in the CRM and check each against the "
        "calls ctid measured: verified only if the seat had an answered call with that "
        "number that day, its own talk on it at least [site] effective_call_seconds.",
    )
    actions = parser.add_subparsers(dest="followups_command", metavar="ACTION", required=True)
    imports = actions.add_parser(
        "import",
        help="store the follow-ups of a CSV file",
        description="Store the follow-ups of a CSV file with columns seat, number, time "
        "(ISO 8601; site time without an offset), class (A, B or empty) and note. All or "
        "nothing: the first bad row is reported (file, line, column) and nothing is stored. "
        "Follow-ups already stored are counted as duplicates.",
    )
    imports.add_argument("file", type=Path, metavar="FILE.csv")
    _common(imports)
    imports.set_defaults(handler=with_settings(FOLLOWUPS, "import_command"))
    report = actions.add_parser(
        "report",
        help="per seat: follow-ups claimed, verified, unverified and why",
        description="Per seat, the follow-ups claimed for a local day, how many the calls "
        "verify, and each unverified one (number masked) with its reason: call too short, "
        "not answered, other seat's call, no call.",
    )
    _common(report)
    report.add_argument("--date", help="local day (YYYY-MM-DD; default today)")
    report.add_argument("--format", choices=FORMATS, default="table")
    report.set_defaults(handler=with_settings(FOLLOWUPS, "report_command"))


def _register_leads(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "leads",
        help="lead lists and how much of them was dialled and answered",
        description="Named lists of customer numbers (stored hashed) and their coverage by "
        "outbound calls.",
    )
    actions = parser.add_subparsers(dest="leads_command", metavar="ACTION", required=True)
    imports = actions.add_parser(
        "import",
        help="add the numbers of a CSV file to a named list",
        description="Add the numbers of a CSV file (a 'number' column) to the list NAME, "
        "creating it if new. All or nothing; numbers the list holds already are counted as "
        "duplicates.",
    )
    imports.add_argument("name", metavar="NAME")
    imports.add_argument("file", type=Path, metavar="FILE.csv")
    _common(imports)
    imports.set_defaults(handler=with_settings(LEADS, "import_command"))
    cover = actions.add_parser(
        "coverage",
        help="share of a list dialled and answered at least once",
        description="Of the numbers in list NAME: the share some seat dialled at least once "
        "over the local days --from to --to, and the share such a call was answered; per "
        "team of the dialling seat too.",
    )
    cover.add_argument("name", metavar="NAME")
    _common(cover)
    cover.add_argument(
        "--from", dest="since", help="first local day (YYYY-MM-DD; default 29 days before --to)"
    )
    cover.add_argument("--to", help="last local day (YYYY-MM-DD; default today)")
    cover.add_argument("--format", choices=FORMATS, default="table")
    cover.set_defaults(handler=with_settings(LEADS, "coverage_command"))
