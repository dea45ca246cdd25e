"""The compliance guard wired for a running daemon: sinks in, enforcer and timers out.

``ComplianceService.effect_sink`` and ``event_sink(pbx)`` plug into the PBX pipelines;
:meth:`ComplianceService.run` owns the enforcer and the tiny timer loop (disclosure deadlines,
journal writes) in one TaskGroup.  Both journals — opt-outs and frequency attempts — are
written in a worker thread: the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Generic, NoReturn, Protocol, TypeVar

import structlog

from ctid.ami.events import AmiEvent
from ctid.compliance.abandon import WindowCount
from ctid.compliance.channels import ChannelLookup
from ctid.compliance.decision import Decision, Mode
from ctid.compliance.enforcer import ActionSender, Enforcer, Settled
from ctid.compliance.frequency import DAY, Attempt, FrequencyCaps, FrequencyJournal
from ctid.compliance.guard import ComplianceGuard
from ctid.compliance.optout import JournalEntry, OptOutJournal, OptOutList
from ctid.compliance.settings import ComplianceSettings
from ctid.errors import PolicyError
from ctid.privacy import mask_number
from ctid.tracker.model import Effect, OutboundDial

_log = structlog.get_logger(__name__)
TICK_SECONDS = 0.25
"""Timer resolution: a disclosure deadline is noticed at most this late."""
LOGGED_CHANGES = 20
"""Opt-out changes logged one line each per tick; a bigger batch (an import) gets a summary."""
COMPACT_EVERY = DAY
"""The frequency journal drops attempts older than a week at start and then once a day."""

Entry = TypeVar("Entry")


class JournalWriter(Generic[Entry]):
    """Appends entries in a worker thread; a failed write puts them back to be retried on the
    next tick (memory stays authoritative), logged once when it starts failing and once when
    it works again."""

    def __init__(
        self,
        name: str,
        path: Path,
        append: Callable[[list[Entry]], None],
        requeue: Callable[[list[Entry]], None],
    ) -> None:
        self.name, self.path = name, path
        self._append, self._requeue = append, requeue
        self.failing = False

    async def write(self, entries: list[Entry]) -> None:
        try:
            await asyncio.to_thread(self._append, entries)
        except OSError as err:
            self._requeue(entries)
            self.failed(err)
            return
        if self.failing:
            _log.info(f"{self.name}_journal_recovered", path=str(self.path))
        self.failing = False

    def failed(self, err: Exception) -> None:
        if not self.failing:
            _log.error(f"{self.name}_journal_failed", path=str(self.path), error=str(err))
        self.failing = True


class DecisionMetrics(Protocol):
    """What :class:`ctid.metrics.compliance.ComplianceMetrics` offers."""

    def checked(self, seat: str | None) -> None: ...

    def violated(
        self, seat: str | None, rule: str, mode: str, *, intercepted: bool | None = None
    ) -> None: ...


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
        optouts = self.guard.optouts
        self._optout_writer = (
            JournalWriter("dnc", self.journal.path, self.journal.append, optouts.requeue)
            if self.journal is not None
            else None
        )
        # The guard's counters; they are keyed and journalled once load() has the key.
        self._caps: FrequencyCaps = self.guard.caps
        self.frequency_journal = FrequencyJournal(data_dir) if data_dir is not None else None
        self._frequency_writer: JournalWriter[Attempt] | None = None
        self._next_compaction = float("inf")

    def load(self) -> None:
        """Restore the opt-out journal, import the CSV lists and restore the frequency
        journal; blocking, call at start."""
        optouts = self.guard.optouts
        if self.journal is not None:
            optouts.restore(self.journal.load())
        for path in self.settings.do_not_call.import_csv:
            added = optouts.import_csv(path, time.time())
            _log.info("dnc_imported", file=str(path), added=added)
        _log.info("dnc_loaded", numbers=len(optouts), policy_version=self.settings.version)
        customer_only, customers = self.settings.customer_only, self.guard.customers
        if customer_only.mode is not Mode.OFF:  # a rule that is off reads no files either
            for path in customer_only.customer_csv:
                added = customers.import_csv(path)
                _log.info("customers_imported", file=str(path), added=added)
            _log.info("customers_loaded", numbers=len(customers))
        self._load_frequency()

    def _load_frequency(self) -> None:
        """Key the frequency counters and restore the last week of attempts, compacting the
        journal; blocking, part of :meth:`load`."""
        journal = self.frequency_journal
        if journal is None:
            return
        self._caps.keep_journal(journal.secret())
        now = self._pbx_clock()
        try:
            attempts, dropped = journal.load(now)
        except OSError as err:
            raise PolicyError(f"{journal.path}: cannot read ({err.strerror})") from err
        self._caps.restore(attempts)
        writer = JournalWriter("frequency", journal.path, journal.append, self._caps.requeue)
        self._frequency_writer = writer
        self._next_compaction = now + COMPACT_EVERY
        if dropped:
            try:
                journal.rewrite(attempts)
            except OSError as err:
                writer.failed(err)  # expired lines are skipped again at the next start
        _log.info("frequency_loaded", attempts=len(attempts), expired=dropped)

    def abandon_figures(self) -> list[WindowCount]:
        """Each queue's abandon-rate counts per report window, as of the PBX clock's now."""
        return self.guard.abandon.report(self._pbx_clock())

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
                # The metrics port knows two modes: enforced or only recorded.  Only a decision
                # that sends Hangup/Redirect stops a call: an enforced alarm (abandon rate,
                # quota gaming) or a call already gone intercepts nothing.
                mode = "enforce" if d.mode is Mode.ENFORCE else "monitor"
                self._metrics.violated(d.seat, str(d.rule), mode, intercepted=d.acts)
        self.enforcer.submit(decisions)

    async def run(self) -> NoReturn:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.enforcer.run())
            while True:
                await asyncio.sleep(self._tick)
                await self.tick(self._pbx_clock())

    async def tick(self, now: float) -> None:
        """One timer step: due decisions, then journal writes (in a thread, off the loop)."""
        self._submit(self.guard.due(now))
        entries = self.guard.optouts.drain()
        if entries:
            _log_optouts(entries)
            if self._optout_writer is not None:
                await self._optout_writer.write(entries)
        writer = self._frequency_writer
        if writer is None:
            return
        attempts = self._caps.drain()
        if attempts:
            await writer.write(attempts)
        if now >= self._next_compaction and not writer.failing:
            await self._compact(writer, now)

    async def _compact(self, writer: JournalWriter[Attempt], now: float) -> None:
        assert self.frequency_journal is not None
        self._next_compaction = now + COMPACT_EVERY
        try:
            dropped = await asyncio.to_thread(self.frequency_journal.compact, now)
        except (OSError, PolicyError) as err:
            writer.failed(err)  # the journal stays as it was; tried again in a day
            return
        _log.info("frequency_journal_compacted", expired=dropped)


def _log_optouts(entries: list[JournalEntry]) -> None:
    if len(entries) <= LOGGED_CHANGES:
        for entry in entries:
            _log.info(
                "dnc_changed", op=entry.op, number=mask_number(entry.number), source=entry.source
            )
        return
    changes = Counter((entry.op, entry.source) for entry in entries)
    for (op, source), count in sorted(changes.items()):
        _log.info("dnc_changed", op=op, numbers=count, source=source)
