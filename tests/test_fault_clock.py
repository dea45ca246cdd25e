"""Clock faults on the PBX side, replayed over real TCP through the daemon's PBX link.

* A PBX clock hours ahead of or behind ctid's: talk comes from the PBX's ``Timestamp``
  headers, so it stays exact, and each call lands on the local day (site zone) of its PBX
  time, not of the local clock.
* The PBX clock stepped back mid-call (NTP): talk is counted per interval from the PBX
  times and an interval that would end before it began counts zero; nothing goes negative,
  the call still ends and is counted, and calls after the step are exact again.
* Local midnight during an AMI outage (the PBX crashed mid-call): talk up to the last frame
  is split at midnight, the gap is recorded across midnight, nothing is counted twice.
* An outage the call survives (the PBX kept running), replayed at the PBX's own pace so its
  clock runs with ctid's: talk stops at the last frame and starts again at the resync, which
  ends the recorded gap; the outage is neither talk nor counted twice.

The captures are real; only their ``Timestamp`` headers (and, for the outage, the epoch in
their unique ids) are rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from ctid.ami.capture import Capture, RecordedFrame, frame_timestamp, parse_capture
from ctid.ami.codec import AmiCodec, Message
from ctid.ami.retime import retime_frame
from ctid.ami.server import AmiReplayServer
from ctid.config import Settings
from ctid.live.floor import LIVE_EVENTS
from ctid.pbx_link import PbxLink
from ctid.pipeline import EffectSink
from ctid.store.queries import rebuild_day
from ctid.store.schema import metadata
from ctid.store.writer import StoreWriter
from ctid.tracker.model import Call, CallEnded, Effect
from ctid.tracker.tallies import DailyTallies, SeatTally
from tests.store.support import TEST_NUMBERS, migrated, wait_for, writer_running
from tests.truth import (
    TOLERANCE_S,
    call_mismatches,
    capture_streams,
    load_truth,
    seat_mismatches,
)

SITE_ZONE = "Asia/Shanghai"
SECRET = "s3cret"
HOUR = 3600.0
_STAMP = re.compile(rb"(?m)^(Timestamp: *)([0-9]+(?:\.[0-9]*)?)")


def captures(name: str) -> list[Capture]:
    return [parse_capture(data, name=name) for data in capture_streams(name)]


def rewrite(capture: Capture, change: Callable[[bytes], bytes]) -> Capture:
    """The capture with ``change`` applied to every event frame's bytes."""
    events = []
    for recorded in capture.events:
        raw = change(recorded.raw)
        events.append(RecordedFrame(raw, frame_timestamp(raw)))
    return Capture(capture.banner, capture.login_response, events, capture.name)


def restamp(capture: Capture, clock: Callable[[float], float]) -> Capture:
    """The capture with every ``Timestamp`` header ``t`` replaced by ``clock(t)``."""

    def stamp(match: re.Match[bytes]) -> bytes:
        return match.group(1) + f"{clock(float(match.group(2))):.6f}".encode()

    return rewrite(capture, lambda raw: _STAMP.sub(stamp, raw))


def retimed(capture: Capture, offset: float) -> Capture:
    """The capture moved by ``offset`` seconds, unique ids included (``ctid.ami.retime``)."""
    return rewrite(capture, lambda raw: retime_frame(raw, offset))


def stamps(capture: Capture) -> list[float]:
    return [f.timestamp for f in capture.events if f.timestamp is not None]


def midnight(day: dt.date, tz: ZoneInfo) -> float:
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).timestamp()


@dataclass
class LinkRun:
    link: PbxLink
    ended: list[Call] = field(default_factory=list)
    gaps: list[tuple[float, float | None]] = field(default_factory=list)

    @property
    def tallies(self) -> DailyTallies:
        return self.link.pipeline.tallies

    def calls(self) -> list[Call]:
        return self.ended + self.link.pipeline.tracker.open_calls()


async def run_link(
    streams: Sequence[Capture],
    *,
    sinks: Sequence[EffectSink] = (),
    on_gap: Callable[[str, float, float | None], None] | None = None,
) -> LinkRun:
    """Replay ``streams`` as successive connections to the daemon's :class:`PbxLink`.

    The server closes each connection when its capture is sent; the link reconnects,
    resyncs and reads the next one.  Done once the gap after the last one is closed (by
    a resync on an idle connection).
    """
    async with AmiReplayServer(streams, secret=SECRET, close_after_stream=True) as server:
        settings = Settings.model_validate(
            {
                "pbx": [{"name": "pbx", "port": server.port, "secret": SECRET}],
                "site": {"timezone": SITE_ZONE},
            }
        )
        tallies = DailyTallies(settings.site.tz, settings.site.effective_call_seconds)
        all_closed = asyncio.Event()
        run: LinkRun | None = None

        def collect(effect: Effect) -> None:
            if isinstance(effect, CallEnded):
                assert run is not None
                run.ended.append(effect.call)

        def gap(pbx: str, started_at: float, ended_at: float | None) -> None:
            assert run is not None
            run.gaps.append((started_at, ended_at))
            if on_gap is not None:
                on_gap(pbx, started_at, ended_at)
            if sum(end is not None for _, end in run.gaps) == len(streams):
                all_closed.set()

        link = PbxLink(
            settings.pbx[0],
            settings,
            tallies,
            keep_events=LIVE_EVENTS,
            sinks=[collect, *sinks],
            on_gap=gap,
        )
        run = LinkRun(link)
        task = asyncio.create_task(link.client.run())
        try:
            await asyncio.wait_for(all_closed.wait(), timeout=60)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return run


def assert_nothing_negative(calls: list[Call]) -> None:
    for call in calls:
        assert call.talk_seconds >= 0, call.linkedid
        assert call.hold_seconds >= 0, call.linkedid
        assert (call.ring_seconds or 0.0) >= 0, call.linkedid
        for segment in call.segments.values():
            for start, end in (*segment.talk_intervals, *segment.hold_intervals):
                assert end >= start, call.linkedid


# --- a PBX clock hours off ctid's ----------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("skew", ["ahead", "behind"])
@pytest.mark.parametrize("name", ["mixed_busy_period", "pbx_crash_mid_call"])
async def test_a_skewed_pbx_clock_keeps_talk_exact_and_days_on_pbx_time(
    name: str, skew: str
) -> None:
    tz = ZoneInfo(SITE_ZONE)
    recorded = captures(name)
    first, last = stamps(recorded[0])[0], stamps(recorded[-1])[-1]
    today = dt.datetime.now(tz).date()
    # Two hours into tomorrow, or ending two hours before today began (site zone): the PBX
    # is 2 to 26 hours off the local clock, and its day is not today.
    if skew == "ahead":
        pbx_day = today + dt.timedelta(days=1)
        shift = midnight(pbx_day, tz) + 2 * HOUR - first
    else:
        pbx_day = today - dt.timedelta(days=1)
        shift = midnight(today, tz) - 2 * HOUR - last
    streams = [restamp(c, lambda t: t + shift) for c in recorded]

    run = await run_link(streams)

    truth = load_truth(name)
    assert seat_mismatches(truth, run.tallies.totals()) == []
    assert call_mismatches(truth, run.calls()) == []
    assert set(run.tallies.days) == {pbx_day}
    # The link maps the local clock onto the PBX's: "now" on the PBX is hours off ours.
    pbx_now = run.link.pbx_now(time.time())
    assert abs(pbx_now - run.link.pipeline.tracker.last_ts) < 120


# --- the PBX clock stepped back mid-call ---------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("step", [5.0, 30.0])
async def test_a_clock_stepped_back_mid_call_never_gives_negative_talk(step: float) -> None:
    name = "answered_customer_hangup"
    (segment,) = load_truth(name)["expected"]["per_call"][0]["segments"]
    middle = (segment["start"] + segment["end"]) / 2
    (recorded,) = captures(name)
    # Every frame stamped after the middle of the conversation is ``step`` seconds earlier.
    stepped = restamp(recorded, lambda t: t - step if t >= middle else t)

    run = await run_link([stepped])

    (call,) = run.ended
    assert_nothing_negative([call])
    # Talk runs from the answer to the hangup as the PBX stamped them: the step is taken off,
    # and an interval that would end before it began counts zero.
    want = max(0.0, segment["talk_seconds"] - step)
    assert call.talk_seconds == pytest.approx(want, abs=TOLERANCE_S)
    assert str(call.outcome) == "answered"
    tally = run.tallies.totals()["1001"]
    assert (tally.calls, tally.outbound, tally.answered) == (1, 1, 1)
    assert tally.talk_seconds == pytest.approx(call.talk_seconds, abs=1e-9)


@pytest.mark.asyncio
async def test_a_clock_stepped_back_on_a_busy_floor_only_touches_calls_across_the_step() -> None:
    name, step = "mixed_busy_period", 30.0
    truth = load_truth(name)
    (recorded,) = captures(name)
    times = stamps(recorded)
    middle = (times[0] + times[-1]) / 2
    stepped = restamp(recorded, lambda t: t - step if t >= middle else t)

    run = await run_link([stepped])

    calls = run.calls()
    assert_nothing_negative(calls)
    # Every call is still there, ended and counted; counts do not depend on times.
    assert len(run.ended) == len(truth["expected"]["per_call"])
    counts_only = {"talk_seconds", "hold_seconds", "internal_talk_seconds"}
    problems = seat_mismatches(truth, run.tallies.totals(), tolerance=float("inf"))
    assert [p for p in problems if not any(n in p for n in counts_only)] == []
    got = {
        (call.linkedid, s.seat_channel, s.ext_channel): s
        for call in calls
        for s in call.segments.values()
    }
    across = 0
    for want_call in truth["expected"]["per_call"]:
        for want in want_call["segments"]:
            mine = got[(want_call["linkedid"], want["seat_channel"], want["ext_channel"])]
            if want["start"] < middle <= want["end"]:
                across += 1  # loses up to the step, never more, never below zero
                assert 0.0 <= mine.talk_seconds <= want["talk_seconds"] + TOLERANCE_S
            else:
                assert mine.talk_seconds == pytest.approx(want["talk_seconds"], abs=TOLERANCE_S)
                assert mine.hold_seconds == pytest.approx(want["hold_seconds"], abs=TOLERANCE_S)
    assert across > 0  # the step did fall inside some conversation


# --- local midnight inside an AMI outage ---------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("midnight_at", ["during_talk", "during_gap"])
async def test_midnight_during_an_outage_splits_talk_records_the_gap_and_counts_once(
    midnight_at: str, tmp_path: Path
) -> None:
    tz = ZoneInfo(SITE_ZONE)
    name = "pbx_crash_mid_call"
    truth = load_truth(name)
    crashed, after = truth["expected"]["per_call"]
    (talk,) = crashed["segments"]  # seat 1001, answered, then the PBX died mid-call
    part1, part2 = captures(name)
    last_frame, rebooted = stamps(part1)[-1], stamps(part2)[0]
    # Where local midnight falls, in the capture's own time: 2 s before the last frame the
    # link got (the call is still talking), or 3 s into the 7.5 s outage.
    at = last_frame - 2.0 if midnight_at == "during_talk" else last_frame + 3.0
    day = dt.date(2026, 11, 23)
    offset = midnight(day + dt.timedelta(days=1), tz) - at
    streams = [retimed(part1, offset), retimed(part2, offset)]
    m = at + offset  # midnight, epoch

    with migrated(f"sqlite:///{tmp_path / 'ctid.db'}") as engine:
        writer = StoreWriter(engine, numbers=TEST_NUMBERS, flush_ms=10)
        async with writer_running(writer):
            run = await run_link(streams, sinks=[writer], on_gap=writer.record_gap)
            await wait_for(lambda: writer.backlog == 0)
        with engine.connect() as connection:
            gaps = connection.execute(select(metadata.tables["gaps"])).all()
            stored_calls = connection.execute(select(metadata.tables["calls"])).all()
        stored_days = {d: rebuild_day(engine, d, tz) for d in (day, day + dt.timedelta(days=1))}

    next_day = day + dt.timedelta(days=1)
    before = talk["start"] + offset
    lost_at = last_frame + offset
    # Talk up to the last frame, split at midnight; none across the gap.
    want_1001 = {
        day: min(lost_at, m) - before,
        next_day: max(0.0, lost_at - m),
    }
    days = run.tallies.days
    assert set(days) == {day, next_day}
    for d, seconds in want_1001.items():
        got = days[d].get("1001", SeatTally()).talk_seconds
        assert got == pytest.approx(seconds, abs=TOLERANCE_S), d
    # Counted once, on the day the call started; the call after the restart is the next day's.
    assert (days[day]["1001"].calls, days[day]["1001"].answered) == (1, 1)
    assert days[next_day].get("1001", SeatTally()).calls == 0
    assert (days[next_day]["1002"].calls, days[next_day]["1002"].answered) == (1, 1)
    assert days[next_day]["1002"].talk_seconds == pytest.approx(
        after["segments"][0]["talk_seconds"], abs=TOLERANCE_S
    )
    assert seat_mismatches(truth, run.tallies.totals()) == []
    interrupted = [c for c in run.ended if c.interrupted]
    assert len(run.ended) == 2
    assert [c.ended_at for c in interrupted] == [pytest.approx(lost_at, abs=1e-6)]

    # The gap: from the last frame before the crash to the resync after the restart, which
    # is no earlier than the first frame the restarted PBX sent (both on the PBX clock).
    first_gap = min(gaps, key=lambda g: g.started_at)
    assert first_gap.started_at.timestamp() == pytest.approx(lost_at, abs=1e-6)
    assert first_gap.ended_at is not None
    assert first_gap.ended_at.timestamp() >= rebooted + offset - 1e-6
    assert first_gap.ended_at.timestamp() <= stamps(part2)[-1] + offset + 1e-6
    if midnight_at == "during_gap":
        assert first_gap.started_at.timestamp() < m < first_gap.ended_at.timestamp()
    # The store holds each call once and rebuilds the same two days.
    assert len(stored_calls) == 2
    assert stored_days == {d: dict(days[d]) for d in (day, next_day)}


# --- a short outage that the call survives -------------------------------------------------

SPEEDUP = 5.0
"""The capture's times divided by this, then replayed at its pace: the PBX clock runs with
the local one, as it does live, and the test stays short."""
OUTAGE = 1.0
"""Seconds nothing listens on the PBX's port between the two connections (at least)."""
LATER = 3.0
"""How much later the PBX stamps the frames after the outage."""


def bridged_channels(capture: Capture) -> list[dict[str, str]]:
    """``CoreShowChannel`` items for the channels the capture bridges (up, in their bridge)."""
    codec = AmiCodec(keep_events=frozenset({"BridgeEnter"}))
    items = []
    for message in codec.feed(capture.to_bytes()):
        if isinstance(message, Message) and message.name == "BridgeEnter":
            h = message.headers
            item = {k: h[k] for k in ("Channel", "Uniqueid", "Linkedid")}
            items.append({**item, "ChannelState": "6", "BridgeId": h["BridgeUniqueid"]})
    return items


@pytest.mark.asyncio
async def test_a_call_that_survives_an_outage_talks_again_from_the_resync_only() -> None:
    name = "answered_seat_hangup"
    (recorded,) = captures(name)
    (segment,) = load_truth(name)["expected"]["per_call"][0]["segments"]
    first = stamps(recorded)[0]

    def faster(t: float) -> float:
        return first + (t - first) / SPEEDUP

    fast = restamp(recorded, faster)
    start, end = faster(segment["start"]), faster(segment["end"])
    middle = (start + end) / 2
    cut = next(i for i, f in enumerate(fast.events) if (f.timestamp or 0.0) >= middle)
    before = Capture(fast.banner, fast.login_response, fast.events[:cut], name)
    # A new login gets FullyBooted again (the PBX kept running: its uptime is long), then the
    # rest of the call, stamped later by the outage.
    greeting = fast.events[0]
    assert b"Event: FullyBooted" in greeting.raw
    assert greeting.timestamp is None
    tail = Capture(fast.banner, fast.login_response, fast.events[cut:], name)
    rest = restamp(tail, lambda t: t + LATER)
    after = Capture(fast.banner, fast.login_response, [greeting, *rest.events], name)
    lost_at = stamps(before)[-1]
    hangup = end + LATER

    gaps: list[tuple[float, float | None]] = []
    ended: list[Call] = []
    gap_opened, done = asyncio.Event(), asyncio.Event()

    def on_gap(_pbx: str, started_at: float, ended_at: float | None) -> None:
        gaps.append((started_at, ended_at))
        (gap_opened if ended_at is None else done).set()

    def collect(effect: Effect) -> None:
        if isinstance(effect, CallEnded):
            ended.append(effect.call)

    first_pbx = AmiReplayServer(before, secret=SECRET, speed=1.0, close_after_stream=True)
    await first_pbx.start()
    port = first_pbx.port
    settings = Settings.model_validate({"pbx": [{"name": "pbx", "port": port, "secret": SECRET}]})
    tallies = DailyTallies(settings.site.tz)
    link = PbxLink(
        settings.pbx[0],
        settings,
        tallies,
        keep_events=LIVE_EVENTS,
        sinks=[collect],
        on_gap=on_gap,
    )
    second_pbx = AmiReplayServer(
        after,
        port=port,
        secret=SECRET,
        speed=1.0,
        list_items=lambda _action: bridged_channels(fast),
    )
    with capture_logs() as logs:
        task = asyncio.create_task(link.client.run())
        try:
            await asyncio.wait_for(gap_opened.wait(), timeout=30)
            await first_pbx.close()
            await asyncio.sleep(OUTAGE)  # the PBX is unreachable: the link cannot be back sooner
            await second_pbx.start()
            await asyncio.wait_for(done.wait(), timeout=30)
            async with asyncio.timeout(30):
                while not ended:  # noqa: ASYNC110 - the call ends with the second stream's hangup
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await first_pbx.close()
            await second_pbx.close()

    (call,) = ended
    assert not call.interrupted
    # One disconnect, however many attempts the closed port refused: one log line, one gap.
    assert [e["event"] for e in logs].count("ami_disconnected") == 1
    ((opened_at, still_open), (started_at, ended_at)) = gaps
    assert opened_at == pytest.approx(lost_at, abs=1e-6)
    assert still_open is None
    assert started_at == pytest.approx(lost_at, abs=1e-6)
    assert ended_at is not None
    # The gap lasts at least as long as nothing listened (on the PBX clock).
    assert ended_at - started_at >= OUTAGE / 2
    # Talk up to the last frame before the outage, then again from the resync to the hangup:
    # the outage is not talk, and nothing is counted twice.
    want = (lost_at - start) + max(0.0, hangup - ended_at)
    assert call.talk_seconds == pytest.approx(want, abs=TOLERANCE_S)
    assert call.talk_seconds <= (hangup - start) - OUTAGE / 2
    assert tallies.totals()["1004"].talk_seconds == pytest.approx(call.talk_seconds, abs=1e-9)
