"""Rows accepted but not yet stored: a bounded memory queue, then the spool file, in order.

Units (rows written together) enter memory while it has room.  Past ``memory_rows`` they go
to a spill buffer that a task appends to the :class:`~ctid.store.spool.Spool`; from then on
*every* new unit queues behind the spooled ones until the spool has drained back into
memory, so units reach the database in the order they were accepted.  File I/O runs in
worker threads; everything else here runs on the event loop.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ctid.store.spool import Spool, Unit


class Backlog:
    def __init__(self, memory_rows: int, spool: Spool | None) -> None:
        self.memory_rows = memory_rows
        self.spool = spool
        self._memory: deque[Unit] = deque()
        self.memory_size = 0
        self._overflow: list[Unit] = []
        self._overflow_size = 0
        self._spilling = False
        self._in_flight = 0
        """Rows a worker thread is appending to the spool file right now."""
        self.spill_wanted = asyncio.Event()

    @property
    def size(self) -> int:
        spooled = self.spool.unread if self.spool is not None else 0
        # Rows in flight may be counted twice for an instant, never missed.
        return self.memory_size + self._overflow_size + self._in_flight + spooled

    @property
    def draining(self) -> bool:
        """Rows wait in the spool file."""
        return self.spool is not None and self.spool.unread > 0

    def __bool__(self) -> bool:
        return bool(self._memory)

    def put(self, unit: Unit) -> bool:
        """Accept a unit; ``False`` when memory and spill buffer are both full."""
        size = len(unit)
        if not self._spilling and self.memory_size + size <= self.memory_rows:
            self._memory.append(unit)
            self.memory_size += size
            return True
        if self.spool is None or self._overflow_size + size > self.memory_rows:
            return False
        self._spilling = True
        self._overflow.append(unit)
        self._overflow_size += size
        self.spill_wanted.set()
        return True

    def peek(self, max_rows: int) -> list[Unit]:
        """The oldest units, about ``max_rows`` rows (at least one unit)."""
        batch: list[Unit] = []
        size = 0
        for unit in self._memory:
            if batch and size + len(unit) > max_rows:
                break
            batch.append(unit)
            size += len(unit)
        return batch

    def pop(self, count: int) -> None:
        for _ in range(count):
            self.memory_size -= len(self._memory.popleft())

    async def open_spool(self) -> int:
        if self.spool is None:
            return 0
        waiting = await asyncio.to_thread(self.spool.open)
        self._spilling = waiting > 0
        return waiting

    async def spill(self) -> int:
        """Append the spill buffer to the spool; returns rows over the spool bound (dropped).

        On ``OSError`` the units go back to the buffer for the next attempt.
        """
        assert self.spool is not None
        units, size = self._overflow, self._overflow_size
        self._overflow, self._overflow_size = [], 0
        self._in_flight = size
        try:
            return await asyncio.to_thread(self.spool.append, units)
        except OSError:
            self._overflow[:0] = units
            self._overflow_size += size
            raise
        finally:
            self._in_flight = 0

    @property
    def spill_pending(self) -> bool:
        """Units wait for the spool file (buffered, or being appended)."""
        return bool(self._overflow) or self._in_flight > 0

    async def refill(self, max_rows: int) -> None:
        """Move spooled units back into memory as room frees up, oldest first."""
        spool = self.spool
        if spool is None or not self._spilling:
            return
        room = min(self.memory_rows - self.memory_size, max_rows)
        if spool.unread and room > 0:
            for unit in await asyncio.to_thread(spool.read, room):
                self._memory.append(unit)
                self.memory_size += len(unit)
        elif not spool.unread and not self.spill_pending:
            self._spilling = False  # drained: new units may use memory again

    async def release_spool(self) -> None:
        """Remove a fully drained spool file once memory (its last rows) is stored too."""
        spool = self.spool
        if spool is not None and not self._spilling and not self._memory and spool.holds_file:
            await asyncio.to_thread(spool.release)

    def take_all(self) -> tuple[list[Unit], int]:
        """Everything in memory and the spill buffer, oldest first (for shutdown)."""
        units = [*self._memory, *self._overflow]
        size = self.memory_size + self._overflow_size
        self._memory.clear()
        self._overflow = []
        self.memory_size = self._overflow_size = 0
        return units, size
