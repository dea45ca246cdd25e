"""Run ctid's benchmarks: ``python -m bench.run --quick`` (under a minute) or ``--full``.

Prints each benchmark's table and writes every figure, with the machine and commit it ran on,
to ``bench/results/<name>.json`` (``<name>`` defaults to the profile: ``quick`` or ``full``).
Compare ratios measured in one run, not absolute figures across machines or runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench import FULL, QUICK, BenchError, JsonValue, Profile, Report, codec_compare, pipeline

BENCHMARKS: dict[str, Callable[[Profile], Report]] = {
    "codec": codec_compare.run,
    "pipeline": pipeline.run,
}
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in {"model name", "Hardware"}:
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine() -> dict[str, JsonValue]:
    changes = git("status", "--porcelain")  # untracked files count: the tree is not HEAD
    return {
        "cpu_model": cpu_model(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": None if changes is None else bool(changes),
        "panoramisk": package_version("panoramisk"),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument("--quick", dest="profile", action="store_const", const=QUICK)
    profile.add_argument("--full", dest="profile", action="store_const", const=FULL)
    parser.set_defaults(profile=QUICK)
    parser.add_argument("--name", help="results file name without .json (default: profile)")
    parser.add_argument(
        "--only", action="append", choices=sorted(BENCHMARKS), help="run only this benchmark"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    profile: Profile = args.profile
    name: str = args.name or profile.name
    if not _SAFE_NAME.fullmatch(name):
        print(f"bench: --name {name!r} must be letters, digits, '.', '_' or '-'", file=sys.stderr)
        return 2
    started = time.perf_counter()
    figures: dict[str, JsonValue] = {}
    for bench_name in args.only or BENCHMARKS:
        try:
            report = BENCHMARKS[bench_name](profile)
        except BenchError as err:
            print(f"bench: {bench_name}: {err}", file=sys.stderr)
            return 1
        print(report.table, end="\n\n", flush=True)
        figures[bench_name] = report.figures
    result = {
        "name": name,
        "profile": dataclasses.asdict(profile),
        "machine": machine(),
        "elapsed_s": round(time.perf_counter() - started, 1),
        "benchmarks": figures,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)} ({result['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
