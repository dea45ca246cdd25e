"""``ctid`` command line: ``ctid run`` (the daemon) and ``ctid replay`` (offline captures)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from ctid import __version__, adjust_cli
from ctid.compliance import dnc_cli
from ctid.config import load_settings
from ctid.errors import CtidError, InputError
from ctid.policy import cli as policy_cli
from ctid.simulate import cli as simulate_cli
from ctid.store import cli as store_cli
from ctid.store import crm_cli, retention_cli, violations_cli

DESCRIPTION = """\
ctid measures what a telesales floor really does, from the Asterisk PBX itself:
per-seat talk time (hold excluded, transfers and queue calls credited to the seat that
actually talked), calls and effective calls, exported as Prometheus metrics."""

EPILOG = """\
configuration: a TOML file (--config) plus CTID_* environment variables, which win
(nested keys with '__', e.g. CTID_HTTP__PORT=9481). See examples/ and docs/.

examples:
  ctid run --config /etc/ctid/ctid.toml      run the daemon against the configured PBXs
  ctid run                                   no PBX configured: live demo on a bundled capture
  ctid replay day.ami --format table         per-seat minutes from a recorded AMI stream
  ctid adjust add 1001 leave --why sick      record a day's leave in the running daemon
  ctid dnc add 7203000104                    put a number on the do-not-call list
  ctid simulate --seats 50                   a synthetic PBX to point ctid at (demo, load)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ctid",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ctid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run the daemon",
        description="Connect to every configured PBX over AMI, track calls live and serve "
        "/metrics and /healthz. With no [[pbx]] configured, replay a bundled capture through "
        "a local AMI server instead (a demo). Stop with Ctrl-C or SIGTERM.",
    )
    run.add_argument("--config", type=Path, help="TOML configuration file")
    run.set_defaults(handler=_run)

    replay = sub.add_parser(
        "replay",
        help="process recorded AMI streams offline",
        description="Run recorded AMI byte streams (.ami, or .ami.gz) through the call tracker "
        "and print per-seat tallies and calls. Several files are successive connections of "
        "one PBX (e.g. before and after a restart).",
    )
    replay.add_argument("files", nargs="+", type=Path, metavar="FILE", help="capture files")
    replay.add_argument("--config", type=Path, help="TOML configuration (seats, trunks, site)")
    replay.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="table for people (default), json for programs (stable schema), csv per seat",
    )
    replay.add_argument(
        "--show-numbers",
        action="store_true",
        help="print customer numbers in full (masked by default)",
    )
    replay.add_argument("--pbx", default=None, help="PBX name to label calls with")
    replay.set_defaults(handler=_replay)

    doctor = sub.add_parser(
        "doctor",
        help="check the PBX set-up ctid relies on",
        description="Log in to every configured PBX and report, one line each with a fix hint: "
        "AMI reachable, login, write privileges, timestampevents, event filter, clock skew, "
        "store reachable and migrated, MQTT broker reachable, "
        "seats and trunks known to the PBX. Exits 1 if a check fails.",
    )
    doctor.add_argument("--config", type=Path, help="TOML configuration file")
    doctor.add_argument(
        "--listen", type=float, default=3.0, help="seconds to watch the event stream (default 3)"
    )
    doctor.set_defaults(handler=_doctor)

    report = sub.add_parser(
        "report", help="reports for managers", description="Per-seat and per-team reports."
    )
    report_sub = report.add_subparsers(dest="report_command", metavar="WHICH", required=True)
    policy_cli.register(sub, report_sub)
    adjust_cli.register(sub)
    dnc_cli.register(sub)
    store_cli.register(sub, report_sub)
    simulate_cli.register(sub)
    violations_cli.register(sub)
    retention_cli.register(sub)
    crm_cli.register(sub)
    return parser


def _replay(args: argparse.Namespace) -> int:
    from ctid.replay import replay_files
    from ctid.report import to_csv, to_json, to_table
    from ctid.tracker.endpoints import EndpointDirectory
    from ctid.tracker.tallies import SeatTally

    settings = load_settings(args.config)
    trunks = [t for pbx in settings.pbx for t in pbx.trunks]
    pbx_name = args.pbx or (settings.pbx[0].name if settings.pbx else "pbx")
    result = replay_files(
        args.files,
        pbx=pbx_name,
        directory=EndpointDirectory(settings.seat_map(), trunks),
        tz=settings.site.tz,
        effective_seconds=settings.site.effective_call_seconds,
    )
    assert result.tallies is not None
    seats = {seat.id: SeatTally() for seat in settings.seats} | result.tallies.totals()
    show = args.show_numbers or settings.show_numbers
    if args.format == "json":
        sys.stdout.write(to_json(seats, result.calls, settings.site.tz, show) + "\n")
    elif args.format == "csv":
        sys.stdout.write(to_csv(seats))
    else:
        names = {seat.id: seat.name for seat in settings.seats}
        sys.stdout.write(to_table(seats, names))
        sys.stdout.flush()
        print(f"{len(result.calls)} calls from {result.frames} AMI frames", file=sys.stderr)
    return 0


def _run(args: argparse.Namespace) -> int:
    import structlog

    from ctid.config import config_warnings
    from ctid.daemon import run_daemon
    from ctid.interpreter import favour_the_event_loop
    from ctid.logs import configure_logging

    settings = load_settings(args.config)
    configure_logging(settings.log.level, settings.log.format)
    for warning in config_warnings(args.config):
        structlog.get_logger("ctid").warning("config_insecure", detail=warning)
    favour_the_event_loop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_daemon(settings))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from ctid.doctor import run_doctor

    settings = load_settings(args.config)
    if not settings.pbx:
        raise InputError("no [[pbx]] configured: doctor checks a real PBX (see examples/ctid.toml)")
    findings = asyncio.run(run_doctor(settings, listen=args.listen))
    for finding in findings:
        print(finding.line())
    return 1 if any(f.ok is False for f in findings) else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except CtidError as err:
        print(f"ctid: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
