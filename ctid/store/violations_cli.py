"""``ctid violations``: the compliance violations of a day, read back from the store.

Only the parser lives here (``ctid --help`` must not import SQLAlchemy); the command is
:func:`ctid.store.violations_report.violations_command`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ctid.store.cli import FORMATS, with_settings

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

RULES = ("calling_hours", "do_not_call", "frequency", "disclosure", "abandon_rate")
"""As :class:`ctid.compliance.Rule` (not imported: it would load the compliance rules)."""


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "violations",
        help="compliance violations of a day, from the store",
        description="List the compliance violations stored for a local day: time, rule, mode, "
        "the action taken and its outcome, seat, team, number (masked unless show_numbers), "
        "the compliance policy version and the reason.",
    )
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument(
        "--db", metavar="URL", help="database URL (default: [store] url, else var/ctid.db)"
    )
    parser.add_argument("--date", help="local day (YYYY-MM-DD; default today)")
    parser.add_argument("--seat", help="only this seat")
    parser.add_argument("--rule", choices=RULES, help="only this rule")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument(
        "--show-numbers",
        action="store_true",
        help="print customer numbers in full, from the stored calls (masked by default)",
    )
    parser.set_defaults(handler=with_settings("ctid.store.violations_report", "violations_command"))
