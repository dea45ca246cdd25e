"""``ctid dnc add|remove|check|import``: the running daemon's do-not-call list, over its API."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ctid.compliance.dnc_api import LISTED_INVALID, MAX_IMPORT_BYTES
from ctid.compliance.optout import CsvError, csv_numbers
from ctid.daemon_client import call_daemon
from ctid.errors import CtidError

IMPORT_SECONDS = 300.0
"""How long an import may take: the daemon parses some 12 000 numbers a second."""

DESCRIPTION = """\
Check, add and remove numbers on the do-not-call list of the running daemon, or import a CSV
file of them, over its HTTP API (URL from [http] host/port, token from [http] api_token or
api_token_env). A change applies from the next dial on and is written to
the opt-out journal (optouts.jsonl in the policy's do_not_call.data_dir). Numbers are
normalised to E.164 with the policy's default_region: 0720..., 720... and +1 (720) ... are one
number. See docs/compliance.md."""

EPILOG = """\
exit status: 0 done (check: listed), 1 check: not listed / import: some rows invalid,
2 error (daemon not running, wrong token, invalid number, unreadable file).

examples:
  ctid dnc check 7203000104
  ctid dnc add "+1 720 300 0104" --reason "asked on the phone"
  ctid dnc remove 7203000104 --reason "added by mistake"
  ctid dnc import dnc.csv          a header row with a 'number' column
"""


def register(sub: Any) -> None:
    """Add ``dnc`` and its actions to ``sub`` (the top-level subparsers)."""
    dnc = sub.add_parser(
        "dnc",
        help="the do-not-call list of the running daemon (check, add, remove, import)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = dnc.add_subparsers(dest="dnc_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML configuration file")
    common.add_argument("--url", help="daemon URL (default: from [http] host and port)")
    audit = argparse.ArgumentParser(add_help=False)
    audit.add_argument("--who", default=None, help="who makes the change (default: login name)")
    audit.add_argument("--reason", default=None, help="why, kept in the opt-out journal")

    check = actions.add_parser(
        "check", parents=[common], help="is a number listed (exit 0) or not (exit 1)"
    )
    check.add_argument("number", help="phone number, in any usual format")
    check.set_defaults(handler=_check)

    add = actions.add_parser("add", parents=[common, audit], help="put a number on the list")
    add.add_argument("number", help="phone number, in any usual format")
    add.set_defaults(handler=_add)

    remove = actions.add_parser("remove", parents=[common, audit], help="take a number off")
    remove.add_argument("number", help="phone number, in any usual format")
    remove.set_defaults(handler=_remove)

    load = actions.add_parser(
        "import",
        parents=[common, audit],
        help="add every number of a CSV file",
        description="Add every number of a UTF-8 CSV file whose header row has a 'number' "
        f"column (other columns are ignored; up to {MAX_IMPORT_BYTES // 2**20} MiB). Valid "
        "rows are added even when others are not; invalid rows are listed by line.",
    )
    load.add_argument("file", type=Path, metavar="FILE.csv", help="CSV file to import")
    load.set_defaults(handler=_import)


def _path(number: str) -> str:
    return "/api/dnc/" + quote(number, safe="")


def _audit(args: argparse.Namespace) -> dict[str, str]:
    fields = {"who": args.who or _login(), "reason": args.reason}
    return {key: value for key, value in fields.items() if value}


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return None


def _check(args: argparse.Namespace) -> int:
    answer = call_daemon(args.config, args.url, "GET", _path(args.number))
    if not answer["listed"]:
        print(f"{args.number}: not on the do-not-call list")
        return 1
    print(f"{args.number}: on the do-not-call list {_since(answer)}")
    return 0


def _add(args: argparse.Namespace) -> int:
    body = {"number": args.number, **_audit(args)}
    answer = call_daemon(args.config, args.url, "POST", "/api/dnc", body=body)
    if answer["added"]:
        print(f"{args.number}: added to the do-not-call list")
    else:
        print(f"{args.number}: already on the do-not-call list {_since(answer)}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    call_daemon(args.config, args.url, "DELETE", _path(args.number), body=_audit(args))
    print(f"{args.number}: removed from the do-not-call list")
    return 0


def _import(args: argparse.Namespace) -> int:
    path: Path = args.file
    data = _read_csv(path)
    answer = call_daemon(
        args.config,
        args.url,
        "POST",
        "/api/dnc/import",
        query=_audit(args),
        data=data,
        seconds=IMPORT_SECONDS,
    )
    print(
        f"{path}: {answer['added']} added, {answer['already']} already listed, "
        f"{answer['invalid']} invalid"
    )
    for line in answer["invalid_lines"]:
        print(f"{path}:{line}: not a phone number", file=sys.stderr)
    if answer["invalid"] > LISTED_INVALID:
        more = answer["invalid"] - LISTED_INVALID
        print(f"{path}: ... and {more} more invalid rows", file=sys.stderr)
    return 1 if answer["invalid"] else 0


def _read_csv(path: Path) -> bytes:
    """The file's bytes, once it is known to be a UTF-8 CSV with a 'number' column."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CtidError(f"{path}: cannot read ({err.strerror})") from err
    if len(data) > MAX_IMPORT_BYTES:
        raise CtidError(
            f"{path}: {len(data)} bytes, more than the {MAX_IMPORT_BYTES} an import takes: "
            "split the file"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise CtidError(f"{path}:{line}: not UTF-8 text") from err
    try:
        for _ in csv_numbers(text):
            pass  # the rows' numbers are the daemon's to judge (its policy's region)
    except CsvError as err:
        raise CtidError(f"{path}:{err.line}: {err.message}") from err
    return data


def _since(answer: dict[str, Any]) -> str:
    text = f"since {answer['since']} (source {answer['source']}"
    if answer.get("reason"):
        text += f", reason: {answer['reason']}"
    return text + ")"
