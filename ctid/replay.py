"""Offline processing of recorded AMI streams (``ctid replay``)."""

from __future__ import annotations

import gzip
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from ctid.ami.codec import AmiCodec, Banner
from ctid.ami.events import TRACKED_EVENTS
from ctid.errors import AmiProtocolError, InputError
from ctid.pipeline import EffectSink, PbxPipeline
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Call, CallEnded, Effect
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker

_FIRST_TIMESTAMP = re.compile(rb"\nTimestamp: *([0-9]+(?:\.[0-9]*)?)")


@dataclass
class ReplayResult:
    calls: list[Call] = field(default_factory=list)
    tallies: DailyTallies | None = None
    frames: int = 0


def read_capture_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from err
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise InputError(f"{path}: damaged gzip file") from err
    return raw


def replay_streams(
    streams: Sequence[bytes],
    *,
    pbx: str = "pbx",
    directory: EndpointDirectory | None = None,
    tz: ZoneInfo | None = None,
    effective_seconds: float = 30.0,
    chunk_size: int | None = None,
    sinks: Sequence[EffectSink] = (),
) -> ReplayResult:
    """Run streams through the tracker as successive connections of one PBX.

    Between two streams the link counts as lost at the last frame's timestamp, exactly as the
    daemon does when a TCP connection drops.  ``sinks`` get every effect, as in the daemon.
    """
    tallies = DailyTallies(tz or ZoneInfo("UTC"), effective_seconds)
    result = ReplayResult(tallies=tallies)

    def collect(effect: Effect) -> None:
        if isinstance(effect, CallEnded):
            result.calls.append(effect.call)

    tracker = CallTracker(pbx, directory or EndpointDirectory())
    pipeline = PbxPipeline(tracker, tallies, [collect, *sinks])
    for index, data in enumerate(streams):
        codec = AmiCodec(keep_events=TRACKED_EVENTS)
        # Frames without a Timestamp (FullyBooted) get the stream's first PBX time.
        first = _FIRST_TIMESTAMP.search(data)
        fallback = float(first.group(1)) if first else pipeline.tracker.last_ts
        step = chunk_size or len(data) or 1
        for offset in range(0, len(data), step):
            messages = codec.feed(data[offset : offset + step])
            pipeline.on_messages([m for m in messages if not isinstance(m, Banner)], fallback)
        result.frames += codec.frames_seen
        if index < len(streams) - 1:
            pipeline.connection_lost(codec.last_frame_timestamp())
    result.calls.extend(pipeline.tracker.open_calls())
    return result


def replay_files(paths: Sequence[Path], **options: object) -> ReplayResult:
    streams = [read_capture_bytes(path) for path in paths]
    try:
        return replay_streams(streams, **options)  # type: ignore[arg-type]
    except AmiProtocolError as err:
        raise InputError(f"not an AMI capture: {err}") from err
