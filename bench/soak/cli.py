"""``python -m bench.soak`` (``make soak``): run the daemon for minutes against a simulated floor
at twice a 5,000-seat centre's peak, then check that its store holds exactly what was generated.

Exit 0 when the run was done and every call is stored exactly; 1 when it could not be done, or
calls, seconds or rows are missing.  A missed goal (RSS slope, CPU, load) prints ``NO`` and
does not fail.  Figures, machine and commit go to ``bench/results/soak.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench import BenchError
from bench.run import RESULTS, machine
from bench.soak.floor import (
    DEFAULT_CALLS_PER_SEAT_HOUR,
    DEFAULT_EXTRA_TALK,
    DEFAULT_SEATS,
    DEFAULT_SEED,
    FloorSpec,
)
from bench.soak.report import SoakFigures, figures
from bench.soak.run import SoakRun, run_soak
from bench.soak.table import render

DEFAULT_MINUTES = 10.0
DEFAULT_SAMPLE_SECONDS = 5.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=(__doc__ or "").split("\n\n")[0]
    )
    minutes = float(os.environ.get("SOAK_MINUTES") or DEFAULT_MINUTES)
    parser.add_argument(
        "--minutes",
        type=float,
        default=minutes,
        help="calls start for this long (SOAK_MINUTES, 10)",
    )
    parser.add_argument("--seats", type=int, default=DEFAULT_SEATS)
    parser.add_argument(
        "--calls-per-seat-hour", type=float, default=DEFAULT_CALLS_PER_SEAT_HOUR, metavar="R"
    )
    parser.add_argument(
        "--extra-talk", type=_low_high, default=DEFAULT_EXTRA_TALK, metavar="LOW-HIGH"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--speed", type=float, default=1.0, help="PBX seconds per second (1)")
    parser.add_argument("--sample-seconds", type=float, default=DEFAULT_SAMPLE_SECONDS)
    parser.add_argument("--results", type=Path, default=RESULTS / "soak.json")
    parser.add_argument(
        "--workdir", type=Path, help="keep config, logs, truth and database here (default: temp)"
    )
    args = parser.parse_args(argv)
    if not (args.minutes > 0 and args.speed > 0 and args.sample_seconds > 0):
        parser.error("--minutes, --speed and --sample-seconds must be above 0")
    return args


def _low_high(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not LOW-HIGH in whole seconds: {text!r}") from None


@contextlib.contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="ctid-soak-") as temporary:
        yield Path(temporary)


def failures(run: SoakRun) -> list[str]:
    """What makes the soak fail: calls or seconds that differ, rows lost or left behind."""
    found = []
    acc, last = run.accounting, run.samples[-1].counters
    if not acc.matches:
        found.append(f"the store differs from the generated calls ({len(acc.problems)} problems)")
    if last.rows_dropped or last.rows_rejected:
        found.append(f"{last.rows_dropped:g} rows dropped ({last.rows_rejected:g} rejected)")
    if run.spooled_rows:
        found.append(f"{run.spooled_rows} rows left in the spool file, not in the database")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    floor = FloorSpec(
        seats=args.seats,
        calls_per_seat_hour=args.calls_per_seat_hour,
        load_seconds=args.minutes * 60,
        seed=args.seed,
        start=int(time.time()),
        extra_talk=args.extra_talk,
        speed=args.speed,
    )
    began = time.monotonic()
    try:
        with _workdir(args.workdir) as workdir:
            run = run_soak(floor, workdir, args.sample_seconds)
    except (BenchError, OSError) as err:
        print(f"soak: error: {err}", file=sys.stderr)
        return 1
    soak = SoakFigures.of(run)
    data = figures(soak)
    print(render(data, soak.goals()), flush=True)
    result = {
        "name": "soak",
        "machine": machine(),
        "elapsed_s": round(time.monotonic() - began, 1),
        "soak": data,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {args.results}")
    problems = failures(run)
    for problem in problems:
        print(f"soak: {problem}", file=sys.stderr)
    return 1 if problems else 0
