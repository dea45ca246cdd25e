"""The batching store writer: the event loop hands it rows, a task of its own writes them.

``__call__`` (an effect sink), :meth:`StoreWriter.record_cdr` and
:meth:`StoreWriter.record_gap` only queue rows — no I/O on the hot path.
:meth:`StoreWriter.run` flushes every ``flush_ms`` or ``batch_rows`` rows with idempotent
upserts in a worker thread, where call numbers are also hashed, masked and sealed.  When
the database fails, rows stay queued and the flush is retried with jittered exponential
backoff; past ``memory_rows`` new rows spill to the spool file (bounded by ``spool_rows``),
which drains in order once the database is back.  Only rows beyond both bounds, or rows the
database rejects as invalid, are dropped — and counted in :attr:`StoreWriter.dropped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterable

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ctid.ami.backoff import backoff_delay
from ctid.ami.events import CdrWritten
from ctid.errors import CtidError
from ctid.store.backlog import Backlog
from ctid.store.migrate import describe_error
from ctid.store.number_protect import NumberKeys
from ctid.store.rows import StoreRow, cdr_row, gap_row, rows_for_effect
from ctid.store.settings import StoreSettings
from ctid.store.spool import Spool, Unit
from ctid.store.upsert import write_rows
from ctid.tracker.model import Effect

log = structlog.get_logger("ctid.store")

Prepare = Callable[[Engine], None]
"""Run in the worker thread before the first write (migrate, or check the schema)."""

REFILL_BATCHES = 8
"""While draining the spool, read this many batches' worth at a time."""


def is_permanent(err: BaseException) -> bool:
    """Errors that retrying the same rows cannot fix (bad values, a bug), unlike an outage.

    Server and connection trouble, a schema not migrated yet (``StoreError`` from the
    prepare step) and file errors are retried; the rest would block the queue forever.
    """
    if isinstance(err, IntegrityError | DataError):
        return True
    transient = DBAPIError | PoolTimeout | DisconnectionError | CtidError | OSError
    return not isinstance(err, transient)


class StoreWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        numbers: NumberKeys,
        flush_ms: int = 200,
        batch_rows: int = 500,
        memory_rows: int = 100_000,
        spool: Spool | None = None,
        prepare: Prepare | None = None,
        backoff: tuple[float, float] = (0.5, 30.0),
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._engine = engine
        self._numbers = numbers
        self._flush_s = flush_ms / 1000
        self._batch_rows = batch_rows
        self._backlog = Backlog(memory_rows, spool)
        self._prepare = prepare
        self._backoff = backoff
        self._rng = rng
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopped.set()
        self._failures = 0
        self._dropping = False
        self.flushed = 0
        """Rows written to the database."""
        self.dropped = 0
        """Rows lost: beyond both bounds, or rejected by the database."""
        self.rejected = 0
        """Of the dropped rows, those the database refused (invalid values)."""
        self.last_error: str | None = None

    @classmethod
    def from_settings(
        cls,
        engine: Engine,
        settings: StoreSettings,
        numbers: NumberKeys,
        prepare: Prepare | None = None,
    ) -> StoreWriter:
        spool = Spool(settings.spool_path, settings.spool_rows) if settings.spool_rows else None
        return cls(
            engine,
            numbers=numbers,
            flush_ms=settings.flush_ms,
            batch_rows=settings.batch_rows,
            memory_rows=settings.memory_rows,
            spool=spool,
            prepare=prepare,
        )

    # --- the hot path -----------------------------------------------------------------------

    def __call__(self, effect: Effect) -> None:
        self.put(rows_for_effect(effect))

    def record_cdr(self, pbx: str, cdr: CdrWritten) -> None:
        self.put([cdr_row(pbx, cdr)])

    def record_gap(self, pbx: str, started_at: float, ended_at: float | None) -> None:
        self.put([gap_row(pbx, started_at, ended_at)])

    def put(self, rows: Iterable[StoreRow]) -> None:
        """Queue rows that belong together (a call and its segments): one transaction."""
        unit = tuple(rows)
        if not unit:
            return
        if not self._backlog.put(unit):
            self._drop(len(unit), "bounds_exceeded")
        elif self._backlog.memory_size >= self._batch_rows:
            self._wake.set()

    # --- metrics ----------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Rows accepted but not yet in the database (memory, spill buffer and spool file)."""
        return self._backlog.size

    @property
    def spill_pending(self) -> bool:
        """Rows wait for the spool file (past the memory bound, before the file has them)."""
        return self._backlog.spill_pending

    @property
    def healthy(self) -> bool:
        return self._failures == 0

    # --- the writer task --------------------------------------------------------------------

    async def run(self) -> None:
        """Flush until :meth:`close` (or cancellation); owned by the daemon's TaskGroup."""
        self._stopped.clear()
        try:
            waiting = await self._backlog.open_spool()
            if waiting:
                log.info("store_spool_found", rows=waiting)
            async with asyncio.TaskGroup() as tg:
                if self._backlog.spool is not None:
                    tg.create_task(self._spill_loop(), name="store-spill")
                await self._flush_loop()
                self._backlog.spill_wanted.set()
        finally:
            self._stopped.set()

    async def close(self, grace: float = 5.0) -> None:
        """Stop :meth:`run`, keep flushing for up to ``grace`` seconds, spool the rest."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self._stop.set()
        self._wake.set()
        self._backlog.spill_wanted.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), grace)
        # Even after an outage one attempt is worth it (the database may be back); the first
        # failure ends it: the rest goes to the spool for the next start.
        while self._backlog and loop.time() < deadline:
            try:
                written = await asyncio.wait_for(self._flush_batch(), deadline - loop.time())
            except TimeoutError:
                break
            if not written:
                break
        await self._spool_leftovers()

    async def _flush_loop(self) -> None:
        while not self._stop.is_set():
            await self._wait_for_work()
            if self._stop.is_set():
                return
            if self._backlog.memory_size <= self._batch_rows:
                await self._backlog.refill(self._batch_rows * REFILL_BATCHES)
            if not self._backlog:
                await self._backlog.release_spool()
            elif not await self._flush_batch():
                await self._sleep(self._retry_delay())

    async def _wait_for_work(self) -> None:
        draining = self._backlog.draining and self.healthy
        if draining or self._backlog.memory_size >= self._batch_rows:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._flush_s)
        self._wake.clear()

    async def _flush_batch(self) -> bool:
        batch = self._backlog.peek(self._batch_rows)
        try:
            rejected = await asyncio.to_thread(self._write, batch)
        except Exception as err:  # any failure keeps the rows for a retry
            self._note_failure(err)
            return False
        self._backlog.pop(len(batch))
        self._note_success(sum(len(unit) for unit in batch) - rejected)
        if rejected:
            self.rejected += rejected
            self._drop(rejected, "rejected_by_database")
        return True

    def _write(self, batch: list[Unit]) -> int:
        """Worker thread: write a batch; on invalid values, unit by unit, counting the bad.

        Numbers are hashed, masked and sealed here (``write_rows``), off the event loop.
        """
        if self._prepare is not None:
            self._prepare(self._engine)
            self._prepare = None
        numbers = self._numbers.protector()  # reads the key files on first use
        try:
            write_rows(self._engine, [row for unit in batch for row in unit], numbers)
            return 0
        except Exception as err:
            if not is_permanent(err):
                raise
        rejected = 0
        for unit in batch:
            try:
                write_rows(self._engine, unit, numbers)
            except Exception as err:
                if not is_permanent(err):
                    raise
                rejected += len(unit)
        return rejected

    async def _spill_loop(self) -> None:
        wanted = self._backlog.spill_wanted
        while not self._stop.is_set():
            await wanted.wait()
            wanted.clear()
            if not self._backlog.spill_pending:
                continue
            try:
                dropped = await self._backlog.spill()
            except OSError as err:
                log.warning("store_spool_unwritable", error=str(err))
                await self._sleep(self._retry_delay(at_least=1))
                wanted.set()
                continue
            if dropped:
                self._drop(dropped, "spool_full")

    async def _spool_leftovers(self) -> None:
        units, size = self._backlog.take_all()
        if not units:
            return
        if self._backlog.spool is None:
            self._drop(size, "closed_without_spool")
            return
        try:
            dropped = await asyncio.to_thread(self._backlog.spool.append, units)
        except OSError as err:
            log.error("store_spool_unwritable", error=str(err))
            dropped = size
        if dropped:
            self._drop(dropped, "spool_full")
        log.info("store_rows_spooled", rows=size - dropped)

    # --- bookkeeping ------------------------------------------------------------------------

    def _note_failure(self, err: BaseException) -> None:
        self.last_error = str(err) if isinstance(err, CtidError) else describe_error(err)
        if self._failures == 0:
            # Once per outage, not per retry.
            log.warning("store_unavailable", error=self.last_error, backlog=self.backlog)
        self._failures += 1

    def _note_success(self, written: int) -> None:
        if self._failures:
            log.info("store_available", backlog=self.backlog, failed_attempts=self._failures)
        self._failures = 0
        self.flushed += written
        if self._dropping and self.backlog == 0:
            self._dropping = False

    def _drop(self, count: int, reason: str) -> None:
        self.dropped += count
        if not self._dropping:
            self._dropping = True
            log.error("store_rows_dropped", reason=reason, rows=count, backlog=self.backlog)

    def _retry_delay(self, at_least: int = 0) -> float:
        initial, maximum = self._backoff
        attempt = max(self._failures - 1, at_least)
        return backoff_delay(attempt, initial=initial, maximum=maximum, rng=self._rng)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
