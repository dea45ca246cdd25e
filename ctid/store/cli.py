"""Store commands: ``ctid db upgrade``, ``ctid reconcile``, ``ctid backfill``,
``ctid report PERIOD``.

``register(sub, report)`` adds them to ctid's parser the way ``ctid.policy.cli`` does: ``db``,
``reconcile`` and ``backfill`` to the top-level subparsers, the periods (``daily``,
``weekly``, ``dekad``, ``monthly``) to those of ``ctid report``.  Each sets
``handler(args) -> exit code``, which loads the settings (``--config``) and calls a store
handler ``(args, settings) -> exit code``.
User mistakes raise :class:`InputError` or :class:`StoreError` (one line); ``ctid.cli.main``
prints them.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ctid.config import Settings, load_settings

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
Handler = Callable[[argparse.Namespace, Settings], int]
PERIODS = ("daily", "weekly", "dekad", "monthly")
"""As :data:`ctid.store.reporting.PeriodKind` (not imported: it would pull SQLAlchemy in)."""
FORMATS = ("table", "json", "csv")
REPORT_FORMATS = (*FORMATS, "html")


def register(sub: Subparsers, report: Subparsers) -> None:
    """``db upgrade``, ``reconcile`` and ``backfill`` on ``sub``; the periods on ``report``'s
    subparsers."""
    db = sub.add_parser(
        "db",
        help="manage the database",
        description="Manage ctid's database (SQLite in the data dir, or PostgreSQL by URL).",
    )
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = actions.add_parser(
        "upgrade",
        help="apply pending schema migrations",
        description="Create the database if needed and apply every pending migration. The "
        "daemon does this on start unless [store] auto_upgrade = false.",
    )
    _common(up)
    up.add_argument(
        "--new-number-key",
        action="store_true",
        help="create [store] number_key_file if it is missing (only for a store that never held "
        "follow-ups or lead lists: their hashes need the old key)",
    )
    up.set_defaults(handler=with_settings("ctid.store.commands", "db_upgrade"))
    keygen = actions.add_parser(
        "keygen",
        help="create a number encryption key file",
        description="Write a new Fernet key to FILE (mode 0600; an existing file is never "
        "overwritten), for [store] number_encryption_key_file: calls then also keep their "
        "number encrypted, readable with this key only (docs/security.md).",
    )
    keygen.add_argument("file", type=Path, metavar="FILE")
    keygen.add_argument("--config", type=Path, help="TOML configuration file")
    keygen.set_defaults(handler=with_settings("ctid.store.commands", "db_keygen"))
    _register_tallies(actions)
    _register_reconcile(sub)
    _register_backfill(sub)
    for kind in PERIODS:
        _register_period(report, kind)
    from ctid.store import report_cli

    report_cli.register(report)


def with_settings(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """``ctid.cli.main``'s ``args.handler(args)``: load the settings, call the store handler.

    The handler's module is imported only when its command runs: SQLAlchemy and Alembic
    cost half a second that ``ctid run --help`` should not pay.
    """

    def run(args: argparse.Namespace) -> int:
        handler: Handler = getattr(importlib.import_module(module), name)
        return handler(args, load_settings(args.config))

    return run


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument(
        "--db", metavar="URL", help="database URL (default: [store] url, else var/ctid.db)"
    )


def _register_tallies(actions: Subparsers) -> None:
    parser = actions.add_parser(
        "tallies",
        help="a closed day's per-seat tallies: show, rebuild or check them",
        description="Show the per-seat tallies stored when a local day was closed; --rebuild "
        "stores them again from the day's stored calls (source rebuild); --check compares the "
        "stored tallies with the ones rebuilt from the calls and exits 1 when they differ.",
    )
    _common(parser)
    parser.add_argument("--date", required=True, help="the local day (YYYY-MM-DD)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--rebuild", action="store_true", help="store the day again from its stored calls"
    )
    what.add_argument(
        "--check", action="store_true", help="exit 1 when stored and rebuilt tallies differ"
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(handler=with_settings("ctid.store.tallies_cli", "tallies_command"))


def _register_reconcile(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "reconcile",
        help="compare ctid's talk time with Asterisk's CDRs",
        description="Per call, ctid's talk time beside the billsec of the PBX's CDRs: raw drift "
        "(billsec - talk) and drift after the known CDR rules (billsec counts hold, and ring "
        "time when the caller was answered before the seat). With capture files, replay and "
        "store them first; without, reconcile a stored day (--date).",
    )
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE", help="capture files")
    _common(parser)
    parser.add_argument("--pbx", help="PBX name to label calls from files with")
    parser.add_argument("--date", help="local day to reconcile from the store (YYYY-MM-DD)")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--flagged", action="store_true", help="print flagged calls only")
    parser.set_defaults(handler=with_settings("ctid.store.reconcile_cli", "reconcile_command"))


def _register_backfill(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "backfill",
        help="add calls missed in AMI gaps from the PBX's Master.csv",
        description="Read the PBX's cdr_csv file (Master.csv) and store, marked backfilled, the "
        "customer calls that ended inside a recorded AMI gap and that ctid does not have "
        "(talk = billsec). Running it again adds nothing. Also tells what share of the "
        "window's customer calls ctid measured itself.",
    )
    _common(parser)
    parser.add_argument("--pbx", help="only this PBX (default: every PBX with cdr_csv)")
    parser.add_argument(
        "--csv", type=Path, metavar="FILE", help="the Master.csv to read (default: cdr_csv)"
    )
    parser.add_argument(
        "--since",
        help="window start, site time: YYYY-MM-DD[THH:MM] (default: a day before --until)",
    )
    parser.add_argument(
        "--until", help="window end: YYYY-MM-DD (the whole day) or a time; default now"
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(handler=with_settings("ctid.store.backfill_cli", "backfill_command"))


_SPANS = {
    "daily": "a day",
    "weekly": "an ISO week (Monday-Sunday)",
    "dekad": "a dekad (days 1-10, 11-20 or 21 to the end of a month)",
    "monthly": "a month",
}


def _register_period(report: Subparsers, kind: str) -> None:
    parser = report.add_parser(
        kind,
        help=f"per-seat results of {_SPANS[kind]} from the store",
        description=f"Per seat over {_SPANS[kind]}, counted up to and including --date: calls, "
        "answered and effective calls, talk and hold minutes, faxes, dials, ranked by talk "
        "time (robot seats apart). With a quota policy (--policy or [policy] file): each "
        "quota's attainment (actual / the sum of the days' targets), fines summed day by day, "
        "and team and centre totals of the human seats.",
    )
    _common(parser)
    parser.add_argument(
        "--date",
        help="the report date (YYYY-MM-DD; default today): its period, counted up to and "
        "including it; give the period's last day for a whole past period",
    )
    parser.add_argument("--team", help="only seats of this team")
    parser.add_argument(
        "--policy", type=Path, metavar="FILE", help="quota policy file (default: [policy] file)"
    )
    parser.add_argument(
        "--format",
        choices=REPORT_FORMATS,
        default="table",
        help="table (default), json, csv (one row per seat) or html (one self-contained page)",
    )
    parser.add_argument(
        "--output", type=Path, metavar="FILE", help="write the report to FILE (default: stdout)"
    )
    parser.set_defaults(handler=with_settings("ctid.store.commands", "report_command"), period=kind)
