"""Tables and figures of the pipeline benchmark (:mod:`bench.pipeline`): goals against
measurements, latency percentiles, and the JSON figures of every run."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench import JsonValue, Timing, footprint

if TYPE_CHECKING:
    from bench.pipeline import Paced, Saturation, Settings

SEATS = 5_000
"""Seats on the floor whenever ``/metrics`` is scraped or rendered."""
CLIENTS = ("ctid", "ctid_before", "panoramisk")
BARE = {
    "bare": "no ctid: asyncio streams",
    "bare_64k": "no ctid: streams, 64 KiB recv",
    "bare_buffered": "no ctid: BufferedProtocol",
}


@dataclass(frozen=True, slots=True)
class Goal:
    label: str
    value: float | None
    goal: float
    unit: str
    at_most: bool  # True: the value must not exceed the goal

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.goal if self.at_most else self.value >= self.goal


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """Nearest-rank p50/p99/p99.9 and max (None without samples)."""
    ordered = sorted(values)

    def rank(q: float) -> float | None:
        if not ordered:
            return None
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {
        "n": len(ordered),
        "p50": rank(0.5),
        "p99": rank(0.99),
        "p99_9": rank(0.999),
        "max": ordered[-1] if ordered else None,
    }


def _rate(frames: int, t: Timing) -> tuple[float, float]:
    return frames / t.best, frames / t.median


def goals(sat: Saturation, slow: Paced, fast: Paced, foot: footprint.Footprint) -> list[Goal]:
    ctid, pano = sat.timings["ctid"], sat.timings["panoramisk"]
    lat = percentiles(fast.decision_ms)
    at = f"10k frames/s, /metrics every 1 s ({fast.renderer})"
    goals = [
        Goal(
            "throughput, TCP, full pipeline, best run",
            sat.frames / ctid.best,
            250_000,
            "f/s",
            False,
        ),
        Goal("  ratio to panoramisk + same tracker, best", pano.best / ctid.best, 8.0, "x", False),
        Goal(
            f"CPU at 2.3k frames/s, scraped ({slow.renderer})", slow.cpu_share * 100, 5.0, "%", True
        ),
        Goal(f"decision p99, {at}", _num(lat["p99"]), 1.0, "ms", True),
        Goal(f"decision p99.9, {at}", _num(lat["p99_9"]), 10.0, "ms", True),
        Goal(f"decision max, {at}", _num(lat["max"]), 50.0, "ms", True),
        Goal("memory per active call (RSS)", foot.per_call, 2048, "B", True),
        Goal("memory per seat (RSS)", foot.per_seat, 4096, "B", True),
        Goal("RSS at 5k seats + 5k calls", foot.rss_calls / 2**20, 100, "MiB", True),
        Goal("/metrics at 5k seats, generate_latest, best", min(foot.render_ms), 10.0, "ms", True),
    ]
    if foot.fast_render_ms:
        best = min(foot.fast_render_ms)
        goals.append(Goal("/metrics at 5k seats, fast exposition, best", best, 10.0, "ms", True))
    return goals


def _num(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def figures(
    s: Settings,
    inproc_frames: int,
    inproc: dict[str, Timing],
    sat: Saturation,
    runs: list[Paced],
    foot: footprint.Footprint,
    goals: list[Goal],
) -> dict[str, JsonValue]:
    ctid, before, pano = (sat.timings[c] for c in CLIENTS)
    return {
        "settings": {
            "saturation_copies": s.saturation_copies,
            "saturation_rounds": s.saturation_rounds,
            "paced_seconds": s.paced_seconds,
            "inprocess_copies": s.inprocess_copies,
            "inprocess_repeats": s.inprocess_repeats,
            "render_repeats": s.render_repeats,
            "seats_on_floor_when_scraped": SEATS,
        },
        "goals": [
            {
                "label": g.label.strip(),
                "value": g.value,
                "goal": g.goal,
                "unit": g.unit,
                "met": g.met,
            }
            for g in goals
        ],
        "saturation": {
            "frames": sat.frames,
            "cases": {c: t.figures(sat.frames) for c, t in sat.timings.items()},
            "cpu_seconds": {c: list(t.runs) for c, t in sat.cpu.items()},
            "calls_ended": sat.calls_ended,
            "frames_read": sat.frames_read,
            "ratio_ctid_over_panoramisk": {
                "best": pano.best / ctid.best,
                "median": pano.median / ctid.median,
            },
            "ratio_after_over_before": {
                "best": before.best / ctid.best,
                "median": before.median / ctid.median,
            },
        },
        "inprocess": {
            "frames": inproc_frames,
            "cases": {c: t.figures(inproc_frames) for c, t in inproc.items()},
            "ratio_codec_after_over_before": _speedup(
                inproc["codec_after"], inproc["codec_before"]
            ),
            "ratio_pipeline_after_over_before": _speedup(
                inproc["pipeline_after"], inproc["pipeline_before"]
            ),
        },
        "paced": [
            {
                "rate_frames_per_s": r.rate,
                "client": r.client,
                "scraped_every_s": 1.0 if r.scraped else None,
                "renderer": r.renderer if r.scraped else None,
                "frames": r.frames,
                "seconds": r.seconds,
                "cpu_share_of_core": r.cpu_share,
                "decision_ms": percentiles(r.decision_ms),
                "decision_unmatched": r.decision_unmatched,
                "decision_from_read_ms": percentiles(r.decision_from_read_ms),
                "read_ms": percentiles(r.read_ms),
                "scrape_ms": percentiles(r.scrapes_ms),
                "scrape_bytes": r.scrape_bytes,
                "scrape_errors": r.scrape_errors,
            }
            for r in runs
        ],
        "footprint": {
            "seats": foot.seats,
            "calls_open": foot.calls_open,
            "channels_open": foot.channels_open,
            "copies": foot.copies,
            "peak_calls_per_copy": foot.peak_calls_per_copy,
            "rss_empty_bytes": foot.rss_empty,
            "rss_seats_bytes": foot.rss_seats,
            "rss_calls_bytes": foot.rss_calls,
            "bytes_per_seat": foot.per_seat,
            "bytes_per_call": foot.per_call,
            "render_ms": footprint.summary(foot.render_ms),
            "render_bytes": foot.render_bytes,
            "fast_render_ms": footprint.summary(foot.fast_render_ms)
            if foot.fast_render_ms
            else None,
            "fast_render_bytes": foot.fast_render_bytes,
        },
    }


def _speedup(after: Timing, before: Timing) -> dict[str, float]:
    return {"best": before.best / after.best, "median": before.median / after.median}


def _fmt(value: float | int | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(
    sat: Saturation,
    inproc_frames: int,
    inproc: dict[str, Timing],
    runs: list[Paced],
    foot: footprint.Footprint,
    goals: list[Goal],
) -> str:
    lines = [
        f"pipeline: mixed capture remapped; TCP saturation {sat.frames:,} frames, "
        f"best/median of {len(sat.timings['ctid'].runs)} runs; "
        f"floor of {SEATS:,} seats when scraped",
        f"{'goal':<52}{'measured':>14}{'goal':>12}  met",
    ]
    for g in goals:
        sign = "<=" if g.at_most else ">="
        met = {True: "yes", False: "NO", None: "-"}[g.met]
        digits = 0 if g.unit in ("f/s", "B") else 2
        goal = f"{sign} {_fmt(g.goal, 0)}"
        lines.append(f"{g.label:<52}{_fmt(g.value, digits):>10} {g.unit:<3}{goal:>12}  {met}")
    lines.append(f"{'throughput case':<52}{'best frames/s':>14}{'median':>12}{'CPU s':>8}")
    for client, label in zip(
        CLIENTS,
        ("ctid (after)", "ctid, codec before its fast path", "panoramisk + ctid tracker"),
        strict=True,
    ):
        best, median = _rate(sat.frames, sat.timings[client])
        lines.append(
            f"  TCP, {label:<46}{best:>14,.0f}{median:>12,.0f}{sat.cpu[client].best:>8.2f}"
        )
    for case in ("pipeline_after", "pipeline_before", "codec_after", "codec_before"):
        best, median = _rate(inproc_frames, inproc[case])
        lines.append(f"  in process, {case:<39}{best:>14,.0f}{median:>12,.0f}")
    b = sat.timings
    lines.append(
        f"  after/before: TCP {b['ctid_before'].best / b['ctid'].best:.2f}x, in process pipeline "
        f"{inproc['pipeline_before'].best / inproc['pipeline_after'].best:.2f}x, codec "
        f"{inproc['codec_before'].best / inproc['codec_after'].best:.2f}x (best runs)"
    )
    lines.append(f"{'latency, ms (p50 / p99 / p99.9 / max, n)':<52}")
    for r in runs:
        scraped = f"scraped every 1 s ({r.renderer} renderer)" if r.scraped else "no scrapes"
        who = BARE.get(r.client, r.client)
        cpu = f"CPU {r.cpu_share * 100:.1f} % of a core"
        lines.append(f"  {r.rate / 1000:g}k frames/s, {who}, {scraped}: {cpu}")
        if r.client != "ctid":
            continue
        for label, values in (
            ("decision, written → OutboundDial", r.decision_ms),
            ("decision, read → OutboundDial", r.decision_from_read_ms),
            ("every read, written → applied", r.read_ms),
            ("scrape (HTTP GET /metrics)", r.scrapes_ms),
        ):
            p = percentiles(values)
            lines.append(
                f"    {label:<40}{_fmt(p['p50'])} / {_fmt(p['p99'])} / {_fmt(p['p99_9'])} / "
                f"{_fmt(p['max'])}  (n={p['n']})"
            )
    lines.append(
        f"footprint: {foot.calls_open:,} calls / {foot.channels_open:,} channels open "
        f"({foot.copies} copies), RSS {foot.rss_empty / 2**20:.1f} → {foot.rss_seats / 2**20:.1f} "
        f"→ {foot.rss_calls / 2**20:.1f} MiB; /metrics {foot.render_bytes / 1024:,.0f} KiB, "
        f"generate_latest median {statistics.median(foot.render_ms):.1f} ms"
        + (
            f", fast renderer median {statistics.median(foot.fast_render_ms):.2f} ms"
            if foot.fast_render_ms
            else ""
        )
    )
    return "\n".join(lines)
