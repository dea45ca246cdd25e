"""One PBX's processing chain: AMI messages → typed events → tracker → tallies and sinks."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ctid.ami.codec import Message
from ctid.ami.events import AmiEvent, normalize
from ctid.tracker.model import Effect
from ctid.tracker.tallies import DailyTallies
from ctid.tracker.tracker import CallTracker, LiveChannel

EffectSink = Callable[[Effect], None]
EventSink = Callable[[AmiEvent], None]
"""Sees each typed event just before the tracker applies it (so a Hangup still finds its
channel in the tracker); the compliance guard learns opt-outs and answers this way."""


class PbxPipeline:
    def __init__(
        self,
        tracker: CallTracker,
        tallies: DailyTallies,
        sinks: Iterable[EffectSink] = (),
        event_sinks: Iterable[EventSink] = (),
    ) -> None:
        self.tracker = tracker
        self.tallies = tallies
        self.sinks = list(sinks)
        self.event_sinks = list(event_sinks)
        self.events_applied = 0

    def on_messages(self, batch: list[Message], received_at: float) -> None:
        apply = self.tracker.apply
        event_sinks = self.event_sinks
        for message in batch:
            event = normalize(message, received_at)
            if event is not None:
                self.events_applied += 1
                for sink in event_sinks:
                    sink(event)
                self._dispatch(apply(event))

    def connection_lost(self, last_frame_at: float | None) -> None:
        at = last_frame_at if last_frame_at is not None else self.tracker.last_ts
        self._dispatch(self.tracker.connection_lost(at))

    def resynced(self, at: float, live: Iterable[LiveChannel]) -> None:
        self._dispatch(self.tracker.resynced(at, live))

    def _dispatch(self, effects: list[Effect]) -> None:
        for effect in effects:
            self.tallies.apply(effect)
            for sink in self.sinks:
                sink(effect)
