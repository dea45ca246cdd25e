"""Every capture replayed over real TCP (AMI server → client → tracker) agrees with its truth.

Restart and crash captures are two TCP connections: the server closes the first when it is
exhausted, the client reconnects, resyncs (``CoreShowChannels``) and reads the second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import pytest

from ctid.ami.capture import Capture, parse_capture
from ctid.ami.client import AmiClient
from ctid.ami.events import TRACKED_EVENTS
from ctid.ami.server import AmiReplayServer
from ctid.pipeline import PbxPipeline
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Call, CallEnded, Effect
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker
from tests.truth import call_mismatches, capture_names, capture_streams, load_truth, seat_mismatches


async def _replay_over_tcp(
    name: str, chunk_size: int | None = None
) -> tuple[PbxPipeline, list[Call]]:
    captures = [parse_capture(data, name=name) for data in capture_streams(name)]
    return await replay_over_tcp(captures, chunk_size)


async def replay_over_tcp(
    captures: Sequence[Capture], chunk_size: int | None = None
) -> tuple[PbxPipeline, list[Call]]:
    """Serve the captures (successive connections of one PBX) to the real client and tracker;
    the pipeline and every call, ended or still open, once the last connection closed."""
    ended: list[Call] = []

    def collect(effect: Effect) -> None:
        if isinstance(effect, CallEnded):
            ended.append(effect.call)

    pipeline = PbxPipeline(
        CallTracker("pbx", EndpointDirectory()), DailyTallies(ZoneInfo("UTC")), [collect]
    )
    links_lost = asyncio.Event()
    lost = 0

    def on_lost(last_frame_at: float | None) -> None:
        nonlocal lost
        pipeline.connection_lost(last_frame_at)
        lost += 1
        if lost == len(captures):
            links_lost.set()

    async def resync(session: object) -> None:
        from ctid.daemon import live_channels

        at = pipeline.tracker.last_ts
        items = await session.send_list_action("CoreShowChannels")  # type: ignore[attr-defined]
        pipeline.resynced(at, live_channels(items))

    async with AmiReplayServer(
        captures, secret="s3cret", close_after_stream=True, chunk_size=chunk_size
    ) as server:
        client = AmiClient(
            name="pbx",
            host="127.0.0.1",
            port=server.port,
            username="ctid",
            secret="s3cret",
            auth="md5",
            keep_events=TRACKED_EVENTS,
            on_messages=pipeline.on_messages,
            on_connected=resync,
            on_disconnected=on_lost,
            backoff_initial=0.01,
            backoff_max=0.05,
        )
        task = asyncio.create_task(client.run())
        try:
            await asyncio.wait_for(links_lost.wait(), timeout=60)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return pipeline, ended + pipeline.tracker.open_calls()


@pytest.mark.asyncio
@pytest.mark.parametrize("name", capture_names())
async def test_tcp_replay_matches_truth(name: str) -> None:
    truth = load_truth(name)
    pipeline, calls = await _replay_over_tcp(name)
    assert seat_mismatches(truth, pipeline.tallies.totals()) == []
    assert call_mismatches(truth, calls) == []


@pytest.mark.asyncio
async def test_tcp_replay_in_tiny_chunks_matches_truth() -> None:
    # 3-byte writes split every UTF-8 seat name (张伟 is 6 bytes) across reads.
    truth = load_truth("attended_transfer")
    pipeline, calls = await _replay_over_tcp("attended_transfer", chunk_size=3)
    assert seat_mismatches(truth, pipeline.tallies.totals()) == []
    assert call_mismatches(truth, calls) == []
