"""The writer's overflow on disk: units of rows as JSON lines, appended and read back in order.

One line holds one unit (a call with its segments, a CDR, a gap) as ``<rows>\\t<json>``; the
row count up front lets a restart size an old spool without decoding it.

Every method blocks (file I/O); the writer calls them through ``asyncio.to_thread``.  A lock
makes the spill (append) and the drain (read) safe from two worker threads.

Delivery is at least once: reading only moves an in-memory offset, and the file is removed
once everything in it has been read *and* the writer says those rows are in the database.  A
crash in between replays part of the file on the next start, which the idempotent upserts
absorb.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from ctid.store.rows import StoreRow

Unit = tuple[StoreRow, ...]
"""Rows written in one transaction, never split across batches."""


class Spool:
    def __init__(self, path: Path, max_rows: int) -> None:
        self.path = path
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._rows = 0
        """Rows in the file, read or not: what the bound counts."""
        self._unread = 0
        self._offset = 0
        self.corrupt = 0
        """Lines that could not be decoded (a write cut short by a crash); they are skipped."""

    @property
    def unread(self) -> int:
        """Rows waiting in the file."""
        return self._unread

    @property
    def holds_file(self) -> bool:
        return self._rows > 0

    def open(self) -> int:
        """Adopt a spool left by an earlier run; returns the rows waiting in it."""
        with self._lock:
            self._rows = 0
            try:
                with self.path.open("rb+") as handle:
                    for line in handle:
                        self._rows += _row_count(line)
                    if handle.tell() and _last_byte(handle) != b"\n":
                        handle.write(b"\n")  # end a line cut short, so appends stay separate
            except FileNotFoundError:
                pass
            self._unread = self._rows
            self._offset = 0
            return self._unread

    def append(self, units: Sequence[Unit]) -> int:
        """Append the units that fit under the bound; returns the rows that did not (dropped)."""
        with self._lock:
            lines: list[str] = []
            kept = 0
            for unit in units:
                if self._rows + kept + len(unit) > self.max_rows:
                    break
                lines.append(_encode(unit))
                kept += len(unit)
            if lines:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                # Owner-only: the rows hold customer numbers.
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with open(fd, "a", encoding="utf-8") as handle:
                    handle.write("".join(lines))
                self._rows += kept
                self._unread += kept
            return sum(len(unit) for unit in units) - kept

    def read(self, limit_rows: int) -> list[Unit]:
        """The next units, oldest first, about ``limit_rows`` rows (at least one unit)."""
        with self._lock:
            units: list[Unit] = []
            taken = 0
            if self._unread == 0:
                return units
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                while self._unread > 0 and (taken == 0 or taken < limit_rows):
                    line = handle.readline()
                    if not line:
                        self._unread = 0  # shorter than counted: cut by a crash
                        break
                    self._unread = max(0, self._unread - _row_count(line))
                    unit = _decode(line)
                    if unit is None:
                        self.corrupt += 1
                        continue
                    units.append(unit)
                    taken += len(unit)
                self._offset = handle.tell()
            return units

    def release(self) -> None:
        """Everything read is stored: remove the file if nothing unread remains."""
        with self._lock:
            if self._unread == 0 and self._rows:
                self.path.unlink(missing_ok=True)
                self._rows = 0
                self._offset = 0


def _last_byte(handle: BinaryIO) -> bytes:
    handle.seek(-1, 2)
    return handle.read(1)


def _encode(unit: Unit) -> str:
    body = json.dumps(
        [[r.table, r.values] for r in unit], ensure_ascii=False, separators=(",", ":")
    )
    return f"{len(unit)}\t{body}\n"


def _row_count(line: bytes) -> int:
    head, tab, _ = line.partition(b"\t")
    try:
        return int(head) if tab else 0
    except ValueError:
        return 0


def _decode(line: bytes) -> Unit | None:
    _, tab, body = line.partition(b"\t")
    try:
        items = json.loads(body) if tab else None
        unit = tuple(StoreRow(table, values) for table, values in items or [])
    except (ValueError, TypeError):
        return None
    valid = all(isinstance(r.table, str) and isinstance(r.values, dict) for r in unit)
    return unit if unit and valid else None
