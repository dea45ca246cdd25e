"""The PBX's own records, checked in the daemon: every ended call against its ``Cdr`` events
(:mod:`ctid.reconcile_live`), and after an AMI gap a backfill from the PBX's ``Master.csv``
(:mod:`ctid.store.backfill`).

What the floor hangs on its links: :meth:`CdrChecks.effect_sink`, :meth:`CdrChecks.event_sink`,
:meth:`CdrChecks.on_gap` (records the gap in the store) and one task, :meth:`CdrChecks.run`.

A gap ends, for the backfill and in the store, at the timestamp of the first tracked event
after the reconnect: the resync's own time is whatever event the tracker saw last (usually
one from before the gap), and ``FullyBooted`` carries no timestamp.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from ctid.ami.events import AmiEvent, PbxBooted
from ctid.config import PbxSettings, Settings
from ctid.errors import InputError, StoreError
from ctid.pipeline import EventSink, PbxPipeline
from ctid.reconcile_live import LiveReconciler, ReconcilePort
from ctid.store.backfill import backfill
from ctid.store.runtime import Store
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Call, Effect

log = structlog.get_logger("ctid")

BACKFILL_QUEUE = 64
"""Closed gaps waiting for their backfill; more at once (a flapping link) are skipped."""


class Link(Protocol):
    """What the checks read from a PBX link (``ctid.pbx_link.PbxLink`` fits)."""

    pipeline: PbxPipeline

    @property
    def name(self) -> str: ...
    def pbx_now(self, local_now: float) -> float: ...


@dataclass
class _Gap:
    started_at: float
    first_event_at: float | None = None
    closed: bool = False


class CdrChecks:
    def __init__(
        self,
        settings: Settings,
        pbxs: Sequence[PbxSettings],
        metrics: ReconcilePort,
        store: Store | None,
        links: Callable[[], Sequence[Link]],
    ) -> None:
        seat_map = settings.seat_map()
        self.directories = {p.name: EndpointDirectory(seat_map, p.trunks) for p in pbxs}
        self._links = links
        self.reconciler = LiveReconciler(
            metrics, self.directories, open_calls=self._open_calls, pbx_now=self._pbx_now
        )
        self._store = store
        self._tz = settings.site.tz
        self._csv: dict[str, Path] = {p.name: p.cdr_csv for p in pbxs if p.cdr_csv is not None}
        if self._csv and store is None:
            log.warning("cdr_backfill_off", pbxs=sorted(self._csv), reason="no store to write to")
        self._gaps: dict[str, _Gap] = {}
        self._backfills: asyncio.Queue[tuple[str, float, float]] = asyncio.Queue(BACKFILL_QUEUE)

    # --- hooks for the links ----------------------------------------------------------------

    def effect_sink(self, effect: Effect) -> None:
        self.reconciler.effect_sink(effect)

    def event_sink(self, pbx: str) -> EventSink:
        reconcile = self.reconciler.event_sink(pbx)
        gaps = self._gaps

        def sink(event: AmiEvent) -> None:
            reconcile(event)
            if gaps and pbx in gaps:
                self._after_gap(pbx, event)

        return sink

    def on_gap(self, pbx: str, started_at: float, ended_at: float | None) -> None:
        """``PbxLink``'s gap hook: the link dropped (``ended_at`` None), or it is resynced."""
        if self._store is not None:
            self._store.writer.record_gap(pbx, started_at, ended_at)
        # Lost again before a first event came: one gap, from the first loss on.
        gap = self._gaps.setdefault(pbx, _Gap(started_at))
        gap.closed = ended_at is not None
        self._close(pbx, gap)

    def _after_gap(self, pbx: str, event: AmiEvent) -> None:
        gap = self._gaps[pbx]
        if gap.first_event_at is None and not isinstance(event, PbxBooted):
            gap.first_event_at = event.ts
            self._close(pbx, gap)

    def _close(self, pbx: str, gap: _Gap) -> None:
        if not gap.closed or gap.first_event_at is None:
            return
        del self._gaps[pbx]
        ended_at = max(gap.first_event_at, gap.started_at)
        if self._store is None:
            return
        self._store.writer.record_gap(pbx, gap.started_at, ended_at)  # same key: its true end
        if pbx in self._csv:
            try:
                self._backfills.put_nowait((pbx, gap.started_at, ended_at))
            except asyncio.QueueFull:
                log.warning("cdr_backfill_skipped", pbx=pbx, reason="too many gaps at once")

    # --- the task ---------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.reconciler.run(), name="cdr-reconcile")
            if self._store is not None and self._csv:
                tg.create_task(self._backfill_gaps(self._store), name="cdr-backfill")

    async def _backfill_gaps(self, store: Store) -> None:
        while True:
            pbx, started_at, ended_at = await self._backfills.get()
            known = self.reconciler.known_calls(pbx)
            try:
                # File and database: blocking, so in a worker thread.
                report = await asyncio.to_thread(
                    backfill,
                    store.engine,
                    pbx=pbx,
                    csv_path=self._csv[pbx],
                    directory=self.directories[pbx],
                    since=started_at - 1,
                    until=ended_at + 1,
                    tz=self._tz,
                    numbers=store.numbers,
                    gap_windows=[(started_at, ended_at)],
                    also_known=known,
                )
            except (InputError, StoreError) as err:
                log.warning("cdr_backfill_failed", pbx=pbx, error=str(err))
                continue
            ended = [call.ended_at or call.started_at for call in report.added]
            self.reconciler.count_missed(pbx, ended)
            log.info(
                "cdr_backfilled",
                pbx=pbx,
                gap_seconds=round(ended_at - started_at, 3),
                external_calls=report.external_calls,
                added=len(report.added),
            )

    # --- views over the links -------------------------------------------------------------

    def _link(self, pbx: str) -> Link | None:
        return next((link for link in self._links() if link.name == pbx), None)

    def _pbx_now(self, pbx: str) -> float:
        link = self._link(pbx)
        now = time.time()
        return link.pbx_now(now) if link is not None else now

    def _open_calls(self, pbx: str) -> Mapping[str, Call]:
        link = self._link(pbx)
        return link.pipeline.tracker.calls if link is not None else {}
