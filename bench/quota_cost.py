"""Quota engine cost: ns per quota update against the tracker's own ns per AMI event.

Same run, same capture (mixed_busy_period): the tracker pipeline (normalize → tracker →
tallies) is timed on pre-decoded messages, so codec cost is left out of both sides; then the
effects it produced are fed to a fresh ``QuotaEngine`` per run. The printed ratio is the
engine's cost per finished call over the tracker's cost per event, and the engine's total
over the tracker's total (its share of the event loop). ``python -m bench.quota_cost``.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from time import perf_counter_ns
from zoneinfo import ZoneInfo

from bench import QUICK, JsonValue, Profile, Report
from ctid.ami.codec import AmiCodec, Banner, Message
from ctid.ami.events import TRACKED_EVENTS
from ctid.pipeline import PbxPipeline
from ctid.policy import Policy, QuotaEngine
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import CallEnded, Effect
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker

CAPTURE = Path(__file__).resolve().parent.parent / "tests" / "captures" / "mixed_busy_period.ami.gz"
POLICY = Policy.model_validate(
    {
        "version": "bench",
        "sites": {"floor": {"timezone": "UTC", "workdays": ["monday"]}},
        "tiers": [
            {"name": "standard", "quotas": {"talk_minutes": 100, "effective_calls": 120}},
        ],
    }
)


def decoded_messages() -> list[Message]:
    codec = AmiCodec(keep_events=TRACKED_EVENTS)
    items = codec.feed(gzip.decompress(CAPTURE.read_bytes()))
    return [m for m in items if not isinstance(m, Banner)]


def time_tracker(messages: list[Message]) -> tuple[int, int, list[Effect]]:
    """(nanoseconds, events applied, effects) of one pass through a fresh pipeline."""
    effects: list[Effect] = []
    pipeline = PbxPipeline(
        CallTracker("pbx", EndpointDirectory()), DailyTallies(ZoneInfo("UTC")), [effects.append]
    )
    start = perf_counter_ns()
    pipeline.on_messages(messages, 0.0)
    elapsed = perf_counter_ns() - start
    return elapsed, pipeline.events_applied, effects


def time_engine(effects: list[Effect]) -> int:
    """Nanoseconds to feed ``effects`` to a fresh engine (non-call effects are skipped by it)."""
    engine = QuotaEngine(POLICY, {}, start=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    start = perf_counter_ns()
    for effect in effects:
        engine.apply(effect)
    return perf_counter_ns() - start


def run(profile: Profile) -> Report:
    messages = decoded_messages()
    tracker_best = engine_best = 2**63
    events = calls = 0
    for _ in range(profile.repeats):
        tracker_ns, events, effects = time_tracker(messages)
        engine_ns = time_engine(effects)
        tracker_best, engine_best = min(tracker_best, tracker_ns), min(engine_best, engine_ns)
        calls = sum(isinstance(effect, CallEnded) for effect in effects)
    per_event = tracker_best / events
    per_effect = engine_best / calls
    figures: dict[str, JsonValue] = {
        "events": events,
        "calls_ended": calls,
        "tracker_ns_per_event": round(per_event, 1),
        "quota_ns_per_call_ended": round(per_effect, 1),
        "ratio_per_item": round(per_effect / per_event, 3),
        "ratio_total": round(engine_best / tracker_best, 4),
    }
    table = (
        f"tracker: {events} events, {per_event:,.0f} ns/event (best of {profile.repeats})\n"
        f"quota:   {calls} finished calls, {per_effect:,.0f} ns/call (all its counter updates)\n"
        f"ratio:   {per_effect / per_event:.2f}× (quota ns/call over tracker ns/event); "
        f"quota engine adds {100 * engine_best / tracker_best:.2f} % to the tracker's time\n"
    )
    return Report(figures, table)


if __name__ == "__main__":
    print(run(QUICK).table, end="")
