"""The soak's table, printed from the same figures that go to the JSON file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.pipeline_report import Goal


def _n(value: Any, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _min(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _mib(kib: Any) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


def render(fig: Mapping[str, Any], goals: list[Goal]) -> str:
    floor, d, rate = fig["floor"], fig["durations_s"], fig["frames_per_s"]
    acc, store, rss, lag = (
        fig["accounting"],
        fig["store"],
        fig["rss_kib"],
        fig["loop_lag_ms_after_warmup"],
    )
    cpu = fig["cpu_percent_after_warmup"]
    lines = [
        f"soak: {floor['seats']:,} seats x {floor['calls_per_seat_hour']:g} calls/seat/h, calls "
        f"start for {_min(d['load'])}, speed {floor['speed']:g}, seed {floor['seed']}",
        f"  stream: {fig['planned']['frames']:,} frames, {fig['planned']['calls']:,} calls; "
        f"read in full at {_min(d['read_in_full'])}; warm-up {_min(d['warmup'])}, "
        f"ramp {_min(d['ramp'])}",
        f"  {'goal':<40}{'measured':>19}{'goal':>17}  met",
    ]
    for g in goals:
        sign = "<=" if g.at_most else ">="
        met = {True: "yes", False: "NO", None: "-"}[g.met]
        measured = _n(g.value, 0 if g.unit == "f/s" else 1)
        lines.append(
            f"  {g.label:<40}{measured:>11} {g.unit:<8}{sign:>2} {_n(g.goal):>5} {g.unit:<8} {met}"
        )
    slope, steady_slope = fig["rss_slope_after_warmup"], fig["rss_slope_after_ramp"]
    full_slope = fig["rss_slope_once_full"]
    lines += [
        f"  calls generated / stored:        {acc['calls_generated']:,} / {acc['calls_stored']:,}"
        f" (seat-to-seat {acc['internal_calls_generated']:,} / {acc['internal_calls_stored']:,})",
        f"  talk seconds generated / stored: {_n(acc['talk_seconds_generated'], 2)} / "
        f"{_n(acc['talk_seconds_stored'], 2)}",
        f"  accounting: {'exact' if acc['matches'] else 'MISMATCH'} "
        f"({acc['problem_count']} problems)",
        f"  rows: dropped {_n(store['rows_dropped'])}, rejected {_n(store['rows_rejected'])}, "
        f"left in spool {store['rows_left_in_spool']}, written {_n(store['rows_written'])}; "
        f"writer backlog max {_n(store['backlog_rows_max'])} rows",
        f"  frames/s: after warm-up {_n(rate['after_warmup'])}, after ramp {_n(rate['after_ramp'])}"
        f", whole stream {_n(rate['whole_stream'])}, fastest sample interval "
        f"{_n(rate['peak_sample_interval'])}; reconnects {_n(fig['reconnects'])}",
        f"  RSS: warm-up end {_mib(rss['warmup_end'])}, load end {_mib(rss['load_end'])}, "
        f"end {_mib(rss['end'])}, peak {_mib(rss['peak'])}",
        f"  RSS slope, KiB/min: after warm-up {_n(slope['kib_per_min'], 1)} "
        f"± {_n(slope['stderr'], 1)} (n={slope['samples']}), after ramp "
        f"{_n(steady_slope['kib_per_min'], 1)} ± {_n(steady_slope['stderr'], 1)} "
        f"(n={steady_slope['samples']}), once full "
        f"{_n(full_slope['kib_per_min'], 1)} ± {_n(full_slope['stderr'], 1)} "
        f"(n={full_slope['samples']})",
        f"  loop lag after warm-up, ms: p50 {_n(lag['p50'], 2)}, p99 {_n(lag['p99'], 2)}, "
        f"max {_max_lag(lag)} (n={_n(lag['count'])}, histogram buckets)",
        f"  CPU after warm-up, % of one core: daemon {_n(cpu['daemon'], 1)}, simulator "
        f"{_n(cpu['simulator'], 1)}, soak sampler {_n(cpu['soak'], 1)}, rest of the machine "
        f"{_n(cpu['rest_of_machine'], 1)}",
        f"  daemon log lines by level: {_levels(fig['daemon_log_levels'])}",
    ]
    lines += [f"  problem: {p}" for p in acc["problems"][:10]]
    return "\n".join(lines)


def _max_lag(lag: Mapping[str, Any]) -> str:
    if lag["beyond_last_bucket"]:
        return f"> {lag['buckets'][-1][0]:g} ({lag['beyond_last_bucket']:g} times)"
    return f"<= {_n(lag['max_at_most'], 1)}"


def _levels(levels: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(levels.items())) or "none"
