"""``ctid adjust add|list|revoke``: per-seat-day adjustments through the running daemon's API."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
from pathlib import Path
from typing import Any

from ctid.daemon_client import call_daemon


def register(sub: Any) -> None:
    """Add ``adjust`` and its actions to ``sub`` (the top-level subparsers)."""
    adjust = sub.add_parser(
        "adjust",
        help="per-day quota adjustments (leave, half day, field visit, override)",
        description="Record, list and revoke per-seat, per-day quota adjustments in the running "
        "daemon, over its HTTP API (URL from [http] host/port, token from [http] api_token or "
        "api_token_env). See docs/policy.md.",
    )
    actions = adjust.add_subparsers(dest="adjust_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML configuration file")
    common.add_argument("--url", help="daemon URL (default: from [http] host and port)")

    audit = argparse.ArgumentParser(add_help=False)
    audit.add_argument("--who", default=None, help="who makes the change (default: login name)")
    audit.add_argument("--why", required=True, help="reason, kept in the audit trail")

    add = actions.add_parser("add", parents=[common, audit], help="record an adjustment")
    add.add_argument("seat", help="seat id")
    add.add_argument(
        "kind", choices=("leave", "half_day", "field_visit", "override"), help="what changes"
    )
    add.add_argument("--date", type=dt.date.fromisoformat, help="YYYY-MM-DD (default: today)")
    add.add_argument("--hours", type=float, help="field visit hours")
    add.add_argument("--quota", help="overridden quota (talk_minutes, effective_calls, ...)")
    add.add_argument("--value", type=float, help="override value")
    add.set_defaults(handler=_add)

    show = actions.add_parser("list", parents=[common], help="list a day's adjustments")
    show.add_argument("--date", type=dt.date.fromisoformat, help="YYYY-MM-DD (default: today)")
    show.add_argument("--seat", help="only this seat")
    show.set_defaults(handler=_list)

    revoke = actions.add_parser("revoke", parents=[common, audit], help="revoke an adjustment")
    revoke.add_argument("id", type=int, help="adjustment id (from 'ctid adjust list')")
    revoke.set_defaults(handler=_revoke)


def _add(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "seat": args.seat,
        "date": (args.date or dt.date.today()).isoformat(),
        "kind": args.kind,
        "who": args.who or getpass.getuser(),
        "why": args.why,
    }
    for key in ("hours", "quota", "value"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    entry = call_daemon(args.config, args.url, "POST", "/api/adjustments", body=body)
    print(f"recorded #{entry['id']}: {_describe(entry)}")
    return 0


def _list(args: argparse.Namespace) -> int:
    query = {"date": (args.date or dt.date.today()).isoformat()}
    if args.seat:
        query["seat"] = args.seat
    answer = call_daemon(args.config, args.url, "GET", "/api/adjustments", query=query)
    for entry in answer["adjustments"]:
        state = "active" if entry["active"] else "-"
        print(
            f"#{entry['id']:<5} {state:<7} {_describe(entry)}  "
            f"by {entry['who']} at {entry['when']}: {entry['why']}"
        )
    if not answer["adjustments"]:
        print(f"no adjustments on {query['date']}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    body = {"who": args.who or getpass.getuser(), "why": args.why}
    entry = call_daemon(args.config, args.url, "DELETE", f"/api/adjustments/{args.id}", body=body)
    print(f"revoked #{args.id} (recorded as #{entry['id']})")
    return 0


def _describe(entry: dict[str, Any]) -> str:
    what = str(entry["kind"])
    if entry["kind"] == "field_visit":
        what += f" {entry['hours']:g} h"
    elif entry["kind"] == "override":
        what += f" {entry['quota']}={entry['value']:g}"
    elif entry["kind"] == "revoke":
        what += f" #{entry['revokes']}"
    return f"{what} for seat {entry['seat']} on {entry['date']}"
