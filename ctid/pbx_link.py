"""One PBX as the daemon sees it: an AMI client feeding that PBX's pipeline."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import structlog

from ctid.ami.client import AmiClient, AmiSession
from ctid.ami.codec import Message
from ctid.config import PbxSettings, Settings
from ctid.errors import AmiError
from ctid.metrics.health import GapMeter
from ctid.pipeline import EffectSink, EventSink, PbxPipeline
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker, LiveChannel

log = structlog.get_logger("ctid")

BatchHook = Callable[["PbxLink", list[Message], float], None]
GapHook = Callable[[str, float, float | None], None]
"""(pbx, gap start, gap end or None while open), both on the PBX clock."""


def client_for(pbx: PbxSettings, **hooks_and_options: Any) -> AmiClient:
    """An AMI client for a configured PBX; callers add their hooks and timing options."""
    return AmiClient(
        name=pbx.name,
        host=pbx.host,
        port=pbx.port,
        username=pbx.username,
        secret=pbx.resolved_secret(),
        auth=pbx.auth,
        **hooks_and_options,
    )


def live_channels(items: list[Message]) -> list[LiveChannel]:
    """``CoreShowChannel`` list items → what the tracker needs to know."""
    out = []
    for item in items:
        if item.name != "CoreShowChannel" or not item.get("Uniqueid"):
            continue
        uniqueid = item.headers["Uniqueid"]
        try:
            state = int(item.get("ChannelState") or 0)
        except ValueError:
            state = 0
        out.append(
            LiveChannel(
                uniqueid=uniqueid,
                linkedid=item.get("Linkedid") or uniqueid,
                name=item.get("Channel") or "",
                state=state,
                bridge_id=item.get("BridgeId") or None,
            )
        )
    return out


class PbxLink:
    """An AMI client, its tracker pipeline, and the hooks the rest of the floor hangs on it."""

    def __init__(
        self,
        pbx: PbxSettings,
        settings: Settings,
        tallies: DailyTallies,
        *,
        keep_events: Collection[str],
        sinks: Sequence[EffectSink] = (),
        event_sinks: Sequence[EventSink] = (),
        on_batch: BatchHook | None = None,
        on_gap: GapHook | None = None,
    ) -> None:
        directory = EndpointDirectory(settings.seat_map(), pbx.trunks)
        self._name = pbx.name
        self.pipeline = PbxPipeline(CallTracker(pbx.name, directory), tallies, sinks, event_sinks)
        self._on_batch = on_batch
        self._on_gap = on_gap
        self._gap_started: float | None = None
        self.gaps = GapMeter()
        self.client = client_for(
            pbx,
            keep_events=keep_events,
            on_messages=self._on_messages,
            on_connected=self._resync,
            on_disconnected=self._on_lost,
            ping_interval=pbx.ping_interval,
            action_timeout=pbx.action_timeout,
        )
        self.clock_offset = 0.0
        """Local time minus PBX time, from the newest event; maps wall clock to PBX clock."""

    # --- PbxStatus, for the health metrics --------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def connected(self) -> bool:
        return self.client.connected

    @property
    def reconnects(self) -> int:
        return self.client.reconnects

    @property
    def frames(self) -> int:
        return self.client.frames

    @property
    def events_applied(self) -> int:
        return self.pipeline.events_applied

    @property
    def gap_seconds(self) -> float:
        return self.gaps.total

    def pbx_now(self, local_now: float) -> float:
        return local_now - self.clock_offset

    # --- AMI client hooks -------------------------------------------------------------

    def _on_messages(self, batch: list[Message], received_at: float) -> None:
        # Events without a Timestamp (FullyBooted) get the receive time on the PBX's clock.
        before = self.pipeline.tracker.last_ts
        self.pipeline.on_messages(batch, received_at - self.clock_offset)
        last = self.pipeline.tracker.last_ts
        # Only a batch that moved the PBX clock dates this read; after a batch without any
        # (FullyBooted on a new login, presence events) the newest event is an old one.
        if last > before:
            self.clock_offset = received_at - last
        if self._on_batch is not None:
            self._on_batch(self, batch, received_at)

    def _on_lost(self, last_frame_at: float | None) -> None:
        self.gaps.down()
        self.pipeline.connection_lost(last_frame_at)
        self._gap_started = self.pipeline.tracker.lost_at
        log.warning("pbx_gap_started", pbx=self.name, at=self._gap_started)
        if self._on_gap is not None and self._gap_started is not None:
            self._on_gap(self.name, self._gap_started, None)

    async def _resync(self, session: AmiSession) -> None:
        self.gaps.up()
        try:
            items = await session.send_list_action("CoreShowChannels", {})
        except AmiError as err:
            log.warning("resync_failed", pbx=self.name, error=str(err))
            return
        # The snapshot is the PBX as it is now: survivors talk again from here, and the gap
        # ends here. The newest event before the outage is long past (the gap would end
        # before it began, and a survivor's talk would be counted across it, twice).
        tracker = self.pipeline.tracker
        at = max(self.pbx_now(time.time()), tracker.last_ts, self._gap_started or 0.0)
        live = live_channels(items)
        self.pipeline.resynced(at, live)
        if self._on_gap is not None and self._gap_started is not None:
            self._on_gap(self.name, self._gap_started, at)
        self._gap_started = None
        log.info("resynced", pbx=self.name, live_channels=len(live))
