"""The compliance guard wired for a running daemon: sinks in, enforcer and timers out.

``ComplianceService.effect_sink`` and ``event_sink(pbx)`` plug into the PBX pipelines;
:meth:`ComplianceService.run` owns the enforcer and the tiny timer loop (disclosure deadlines,
opt-out journal writes) in one TaskGroup.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import NoReturn, Protocol

import structlog

from ctid.ami.events import AmiEvent
from ctid.compliance.decision import Decision, Mode
from ctid.compliance.enforcer import ActionSender, Enforcer, Settled
from ctid.compliance.guard import ChannelLookup, ComplianceGuard
from ctid.compliance.optout import JournalEntry, OptOutJournal, OptOutList
from ctid.compliance.settings import ComplianceSettings
from ctid.privacy import mask_number
from ctid.tracker.model import Effect, OutboundDial

_log = structlog.get_logger(__name__)
TICK_SECONDS = 0.25
"""Timer resolution: a disclosure deadline is noticed at most this late."""


class DecisionMetrics(Protocol):
    """What :class:`ctid.metrics.compliance.ComplianceMetrics` offers."""

    def checked(self, seat: str | None) -> None: ...

    def violated(self, seat: str | None, rule: str, mode: str) -> None: ...


class ComplianceService:
    def __init__(
        self,
        settings: ComplianceSettings,
        lookup: ChannelLookup,
        senders: Mapping[str, ActionSender],
        pbx_clock: Callable[[], float],
        *,
        tick: float = TICK_SECONDS,
        metrics: DecisionMetrics | None = None,
        on_settled: Settled | None = None,
    ) -> None:
        self.settings = settings
        self.guard = ComplianceGuard(settings, lookup, OptOutList(settings.default_region))
        self.enforcer = Enforcer(settings.enforcement, senders, on_settled=on_settled)
        data_dir = settings.do_not_call.data_dir
        self.journal = OptOutJournal(data_dir) if data_dir is not None else None
        self._pbx_clock, self._tick = pbx_clock, tick
        self._metrics = metrics
        self._journal_failing = False

    def load(self) -> None:
        """Restore the opt-out journal and import the CSV lists; blocking, call at start."""
        optouts = self.guard.optouts
        if self.journal is not None:
            optouts.restore(self.journal.load())
        for path in self.settings.do_not_call.import_csv:
            added = optouts.import_csv(path, time.time())
            _log.info("dnc_imported", file=str(path), added=added)
        _log.info("dnc_loaded", numbers=len(optouts), policy_version=self.settings.version)

    def effect_sink(self, effect: Effect) -> None:
        decisions = self.guard.on_effect(effect)
        if self._metrics is not None and isinstance(effect, OutboundDial):
            self._metrics.checked(effect.seat)
        self._submit(decisions)

    def event_sink(self, pbx: str) -> Callable[[AmiEvent], None]:
        def sink(event: AmiEvent) -> None:
            self._submit(self.guard.on_event(event, pbx))

        return sink

    def _submit(self, decisions: list[Decision]) -> None:
        if self._metrics is not None:
            for d in decisions:
                # The metrics port knows two modes: stopped (enforce) or only recorded.
                mode = "enforce" if d.mode is Mode.ENFORCE else "monitor"
                self._metrics.violated(d.seat, str(d.rule), mode)
        self.enforcer.submit(decisions)

    async def run(self) -> NoReturn:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.enforcer.run())
            while True:
                await asyncio.sleep(self._tick)
                await self.tick(self._pbx_clock())

    async def tick(self, now: float) -> None:
        """One timer step: due decisions, then opt-outs to disk (in a thread, off the loop)."""
        self._submit(self.guard.due(now))
        entries = self.guard.optouts.drain()
        if entries:
            await self._write_journal(entries)

    async def _write_journal(self, entries: list[JournalEntry]) -> None:
        for entry in entries:
            _log.info("dnc_changed", op=entry.op, number=mask_number(entry.number))
        if self.journal is None:
            return
        try:
            await asyncio.to_thread(self.journal.append, entries)
        except OSError as err:
            self.guard.optouts.requeue(entries)  # retried next tick; memory stays authoritative
            if not self._journal_failing:
                _log.error("dnc_journal_failed", path=str(self.journal.path), error=str(err))
            self._journal_failing = True
            return
        if self._journal_failing:
            _log.info("dnc_journal_recovered", path=str(self.journal.path))
        self._journal_failing = False
