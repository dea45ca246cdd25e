"""Live CDR reconciliation: the pure matcher (hand-made calls and CDRs, and every capture fed
event by event), and the daemon feeding the drift and completeness metrics over real TCP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ctid.ami.capture import parse_capture
from ctid.ami.codec import AmiCodec, Banner
from ctid.ami.events import TRACKED_EVENTS, AmiEvent, CdrWritten
from ctid.ami.server import AmiReplayServer
from ctid.config import Settings
from ctid.daemon import Floor, run_daemon
from ctid.metrics.health import DRIFT_BUCKETS
from ctid.pipeline import PbxPipeline
from ctid.reconcile_live import BILLED, open_claim
from ctid.store.live_reconcile import DECIDED_RETENTION_S, SETTLE_S, LiveMatcher, cdr_record
from ctid.store.reconcile import CallDrift, CdrRecord, Status, party_of, reconcile
from ctid.store.reconcile_cli import reconcile_files
from ctid.store.rolling_share import COMPLETENESS_WINDOW_S
from ctid.store.runtime import open_engine
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Call, CallEnded, Direction, Effect, Outcome, Segment
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker
from tests.store.support import TEST_NUMBERS
from tests.truth import capture_files, capture_names, capture_streams

DIRECTORY = EndpointDirectory()
PARTY = party_of(DIRECTORY)
SEAT, TRUNK = "PJSIP/1001-00000001", "PJSIP/carrier-00000002"
T0 = 1_795_430_000.0


def answered_call(linkedid: str = "pbx-1.1", talk: float = 20.0) -> Call:
    segment = Segment("1001", SEAT, TRUNK, talk_seconds=talk, talk_intervals=((T0, T0 + talk),))
    return Call(
        pbx="pbx",
        linkedid=linkedid,
        direction=Direction.OUTBOUND,
        started_at=T0 - 5,
        placed_by="1001",
        answered_at=T0,
        ended_at=T0 + talk,
        outcome=Outcome.ANSWERED,
        segments={(SEAT, TRUNK): segment},
    )


def billed_cdr(
    linkedid: str = "pbx-1.1",
    billsec: int = 20,
    at: float = T0 + 20,
    channels: tuple[str, str] = (SEAT, TRUNK),
) -> CdrRecord:
    return CdrRecord(
        pbx="pbx",
        linkedid=linkedid,
        uniqueid=linkedid,
        channel=channels[0],
        dest_channel=channels[1],
        disposition="ANSWERED",
        billsec=billsec,
        duration=billsec + 5,
        posted_at=at,
        answered_at=T0,
    )


# --- the pure matcher, by hand ---------------------------------------------------------------


def test_a_call_and_its_cdr_reconcile_alike_in_either_order() -> None:
    call, cdr = answered_call(), billed_cdr(billsec=21)
    cdr_first, call_first = LiveMatcher("pbx", PARTY), LiveMatcher("pbx", PARTY)
    cdr_first.cdr(cdr)
    cdr_first.call_ended(call)
    call_first.call_ended(call)
    call_first.cdr(cdr)
    end = T0 + 20 + SETTLE_S
    assert cdr_first.advance(end) == call_first.advance(end) == reconcile([call], [cdr], DIRECTORY)
    (result,) = reconcile([call], [cdr], DIRECTORY)
    assert result.status is Status.MATCH
    assert result.drift == pytest.approx(1.0)
    assert cdr_first.pending == call_first.pending == 0


def test_a_call_waits_the_settle_window_after_its_last_cdr() -> None:
    matcher = LiveMatcher("pbx", PARTY)
    matcher.call_ended(answered_call())
    matcher.cdr(billed_cdr(at=T0 + 28))  # posted 8 s after the hangup: extends the wait
    assert matcher.advance(T0 + 20 + SETTLE_S) == []
    assert matcher.advance(T0 + 28 + SETTLE_S - 0.001) == []
    (result,) = matcher.advance(T0 + 28 + SETTLE_S)
    assert (result.cdrs, result.billsec) == (1, 20)


def test_a_call_without_a_cdr_is_no_cdr_and_not_incomplete() -> None:
    matcher = LiveMatcher("pbx", PARTY)
    matcher.call_ended(answered_call())
    (result,) = matcher.advance(T0 + 20 + SETTLE_S)
    assert result.status is Status.NO_CDR
    assert matcher.share.ratio is None  # counted neither way


def test_cdrs_no_call_claims_are_missed_and_count_against_completeness() -> None:
    matcher = LiveMatcher("pbx", PARTY)
    matcher.call_ended(answered_call("pbx-1.1"))
    matcher.cdr(billed_cdr("pbx-1.1"))
    other_call = ("PJSIP/1002-00000007", "PJSIP/carrier-00000008")
    matcher.cdr(billed_cdr("pbx-9.9", billsec=33, at=T0 + 25, channels=other_call))  # unseen
    results = matcher.advance(T0 + 25 + SETTLE_S)
    assert [(r.linkedid, r.status) for r in results] == [
        ("pbx-1.1", Status.MATCH),
        ("pbx-9.9", Status.MISSED),
    ]
    assert results[1].billsec == 33
    assert matcher.share.ratio == 0.5


def test_cdrs_wait_while_their_call_is_still_in_progress() -> None:
    # A blind transfer: the first leg's CDR is posted at the transfer, the call goes on.
    open_calls: dict[str, Call] = {"pbx-1.1": answered_call()}
    still_open = open_claim(lambda: open_calls, PARTY)
    matcher = LiveMatcher("pbx", PARTY)
    matcher.cdr(billed_cdr(at=T0 + 5))
    assert matcher.advance(T0 + 5 + 3 * SETTLE_S, still_open) == []
    assert matcher.pending == 1
    call = open_calls.pop("pbx-1.1")
    matcher.call_ended(call)
    (result,) = matcher.advance(max(matcher.due, call.ended_at or 0.0), still_open)
    assert (result.status, result.cdrs) == (Status.MATCH, 1)
    assert matcher.share.ratio == 1.0


def test_a_seat_cdr_of_a_conference_is_claimed_by_channels_whatever_the_order() -> None:
    # In a conference the seat↔trunk CDR carries the seat's linkedid, not the call's.
    seat_cdr = billed_cdr("pbx-5.5", at=T0 + 10)  # the seat left before the customer
    open_calls: dict[str, Call] = {"pbx-1.1": answered_call()}
    still_open = open_claim(lambda: open_calls, PARTY)
    matcher = LiveMatcher("pbx", PARTY)
    matcher.cdr(seat_cdr)
    assert matcher.advance(T0 + 10 + 2 * SETTLE_S, still_open) == []  # kept: the call is live
    matcher.call_ended(open_calls.pop("pbx-1.1"))
    (result,) = matcher.advance(matcher.due + 3 * SETTLE_S, still_open)
    assert (result.linkedid, result.cdrs, result.status) == ("pbx-1.1", 1, Status.MATCH)
    assert matcher.share.ratio == 1.0  # the seat's linkedid is not a missed call


def test_decided_linkedids_are_forgotten_and_the_window_rolls_on() -> None:
    matcher = LiveMatcher("pbx", PARTY)
    matcher.cdr(billed_cdr("pbx-9.9"))
    matcher.advance(T0 + 20 + SETTLE_S)
    assert matcher.share.ratio == 0.0
    matcher.call_ended(answered_call())
    assert matcher.known_calls() == {"pbx-1.1"}  # waiting
    decided_at = matcher.due
    assert len(matcher.advance(decided_at)) == 1
    assert matcher.known_calls() == {"pbx-1.1"}  # decided, remembered for late CDRs
    matcher.advance(decided_at + DECIDED_RETENTION_S + 1)
    assert (matcher.known_calls(), matcher.pending) == (set(), 0)
    matcher.advance(T0 + COMPLETENESS_WINDOW_S + 120)
    assert matcher.share.ratio == 1.0  # nothing in the last hour, nothing missed


def test_a_late_cdr_of_a_decided_call_is_not_missed() -> None:
    matcher = LiveMatcher("pbx", PARTY)
    matcher.call_ended(answered_call())
    assert [r.status for r in matcher.advance(T0 + 20 + SETTLE_S)] == [Status.NO_CDR]
    matcher.cdr(billed_cdr(at=T0 + 60))
    assert matcher.advance(T0 + 60 + SETTLE_S) == []
    assert matcher.share.ratio == 1.0


# --- every capture, event by event, against the offline reconcile ---------------------------


def replay_into_matcher(name: str) -> tuple[list[CallDrift], list[Call], list[CdrRecord]]:
    """The capture through the tracker as the daemon runs it, the matcher fed by its sinks."""
    tracker = CallTracker("pbx", DIRECTORY)
    matcher = LiveMatcher("pbx", PARTY)
    still_open = open_claim(lambda: tracker.calls, PARTY)
    results: list[CallDrift] = []
    ended: list[Call] = []
    cdrs: list[CdrRecord] = []

    def on_event(event: AmiEvent) -> None:
        if isinstance(event, CdrWritten):
            cdrs.append(cdr_record("pbx", event))
            matcher.cdr(cdrs[-1])
        results.extend(matcher.advance(event.ts, still_open))

    def on_effect(effect: Effect) -> None:
        if isinstance(effect, CallEnded):
            ended.append(effect.call)
            matcher.call_ended(effect.call)

    pipeline = PbxPipeline(tracker, DailyTallies(ZoneInfo("UTC")), [on_effect], [on_event])
    streams = capture_streams(name)
    for index, data in enumerate(streams):
        codec = AmiCodec(keep_events=TRACKED_EVENTS)
        messages = [m for m in codec.feed(data) if not isinstance(m, Banner)]
        pipeline.on_messages(messages, tracker.last_ts)
        if index < len(streams) - 1:
            pipeline.connection_lost(codec.last_frame_timestamp())
    results.extend(matcher.advance(tracker.last_ts + 10 * SETTLE_S, still_open))
    assert matcher.pending == 0
    return results, ended, cdrs


@pytest.mark.parametrize("name", capture_names())
def test_live_results_equal_the_offline_reconcile(name: str) -> None:
    live, calls, cdrs = replay_into_matcher(name)
    offline = reconcile(calls, cdrs, DIRECTORY)
    assert sorted(live, key=_order) == sorted(offline, key=_order)


def _order(result: CallDrift) -> tuple[str, str]:
    return result.linkedid, str(result.status)


# --- the daemon over TCP ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def daemon_on(name: str) -> AsyncIterator[Floor]:
    captures = [parse_capture(data, name=name) for data in capture_streams(name)]
    async with AmiReplayServer(captures, secret="s3cret", close_after_stream=True) as pbx:
        settings = Settings.model_validate(
            {
                "pbx": [{"name": "pbx", "port": pbx.port, "secret": "s3cret"}],
                "http": {"enabled": False},
                "store": {"enabled": False},
            }
        )
        ready: asyncio.Future[Floor] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            run_daemon(settings, handle_signals=False, on_ready=lambda f, _p: ready.set_result(f))
        )
        try:
            yield await asyncio.wait_for(ready, timeout=10)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def offline_results(name: str, tmp_path: Path) -> list[CallDrift]:
    """What ``ctid reconcile FILE...`` prints for the capture (stored, then read back)."""
    engine = open_engine(f"sqlite:///{tmp_path / 'offline.db'}", auto_upgrade=True)
    try:
        numbers = TEST_NUMBERS.protector()
        return reconcile_files(engine, capture_files(name), "pbx", DIRECTORY, numbers)
    finally:
        engine.dispose()


async def wait_until(condition: Callable[[], bool], within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        # Polling the registry, as a scrape would: the metrics have no change event.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def sample(floor: Floor, name: str, **labels: str) -> float | None:
    value: Any = floor.registry.get_sample_value(name, {"pbx": "pbx", **labels})
    return None if value is None else float(value)


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["mixed_busy_period", "pbx_restart_mid_call"])
async def test_the_daemon_observes_each_calls_drift_as_ctid_reconcile_computes_it(
    name: str, tmp_path: Path
) -> None:
    expected = [abs(r.drift) for r in offline_results(name, tmp_path) if r.status in BILLED]
    assert expected  # the capture has billed calls to compare
    async with daemon_on(name) as floor:
        count = "ctid_cdr_talk_drift_seconds_count"
        await wait_until(lambda: sample(floor, count) == len(expected))
        for bound in DRIFT_BUCKETS:
            observed = sample(floor, "ctid_cdr_talk_drift_seconds_bucket", le=str(bound))
            assert observed == sum(1 for d in expected if d <= bound), bound
        total = sample(floor, "ctid_cdr_talk_drift_seconds_sum")
        assert total == pytest.approx(sum(expected), abs=1e-9)
        assert sample(floor, "ctid_data_completeness_ratio") == 1.0
