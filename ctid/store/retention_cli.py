"""``ctid purge`` and ``ctid backup``: parsers, and the progress lines both print.

Only the parsers live here (``ctid --help`` must not import SQLAlchemy); the commands are in
:mod:`ctid.store.retention_commands`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ctid.store.cli import with_settings

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

COMMANDS = "ctid.store.retention_commands"


def register(sub: Subparsers) -> None:
    _register_purge(sub)
    _register_backup(sub)


def _database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument(
        "--db", metavar="URL", help="database URL (default: [store] url, else var/ctid.db)"
    )


def _register_purge(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "purge",
        help="delete stored rows of days before a cut-off",
        description="Delete the calls (with their segments), internal talk and calls, CDRs, "
        "AMI gaps, compliance violations and quota adjustments of the local days ([site] "
        "timezone) before a cut-off day, in short transactions. A call that ran past the "
        "cut-off midnight is kept, and the adjustments of kept days; policy versions are "
        "never deleted. Refuses a cut-off inside the current month or ISO week (period "
        "reports read them) unless --force. Prints what went per table.",
    )
    _database(parser)
    parser.add_argument(
        "--older-than",
        metavar="DAYS",
        help="keep the last DAYS days and today: delete days before today minus DAYS",
    )
    parser.add_argument(
        "--before", metavar="YYYY-MM-DD", help="delete days before this one (it is kept)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted, delete nothing"
    )
    parser.add_argument(
        "--force", action="store_true", help="allow a cut-off inside this month or week"
    )
    parser.add_argument(
        "--batch",
        metavar="ROWS",
        default="5000",
        help="rows per transaction (default 5000): smaller holds locks for less time",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(handler=with_settings(COMMANDS, "purge_command"))


def _register_backup(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "backup",
        help="copy the SQLite database while ctid runs",
        description="Copy the SQLite database to DEST with SQLite's online backup API: a "
        "consistent snapshot while the daemon keeps writing. The copy is one self-contained "
        "file, checked with PRAGMA integrity_check before it takes DEST's name. For "
        "PostgreSQL, prints the pg_dump command to use instead (exit status 2).",
    )
    parser.add_argument("dest", type=Path, metavar="DEST", help="the backup file to write")
    _database(parser)
    parser.add_argument("--force", action="store_true", help="replace DEST if it exists")
    parser.set_defaults(handler=with_settings(COMMANDS, "backup_command"))


class ProgressLines:
    """Progress on stderr for long runs: nothing for the first ``every_s``, then a line at
    most every ``every_s``."""

    def __init__(self, every_s: float = 1.0, stream: TextIO | None = None) -> None:
        self.every_s = every_s
        self.stream = stream
        self._next = time.monotonic() + every_s

    def __call__(self, line: str) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every_s
            print(line, file=self.stream or sys.stderr, flush=True)
