"""Do-not-call list: an in-memory set of E.164 numbers with a JSON-lines journal on disk.

Lookups and changes touch memory only; changes are queued as journal entries that a
background task appends to ``optouts.jsonl`` (see :mod:`ctid.compliance.runner`), so the
decision path never waits on the disk.  Replaying the journal at start restores the set.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from ctid.compliance.numbers import is_phone_number, normalise
from ctid.errors import PolicyError

JOURNAL_NAME = "optouts.jsonl"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    op: Literal["add", "remove"]
    number: str
    """E.164; the journal is the one place a full number is written (it *is* the list)."""
    ts: float
    source: str


class OptOutList:
    def __init__(self, default_region: str) -> None:
        self._region = default_region
        self._numbers: set[str] = set()
        self._pending: list[JournalEntry] = []

    def __contains__(self, number: str) -> bool:
        return normalise(number, self._region) in self._numbers

    def __len__(self) -> int:
        return len(self._numbers)

    def add(self, number: str, ts: float, source: str = "api") -> str:
        e164 = normalise(number, self._region)
        if e164 not in self._numbers:
            self._numbers.add(e164)
            self._pending.append(JournalEntry("add", e164, ts, source))
        return e164

    def remove(self, number: str, ts: float, source: str = "api") -> bool:
        e164 = normalise(number, self._region)
        if e164 not in self._numbers:
            return False
        self._numbers.discard(e164)
        self._pending.append(JournalEntry("remove", e164, ts, source))
        return True

    def drain(self) -> list[JournalEntry]:
        """Journal entries not yet written; the caller appends them to disk."""
        pending, self._pending = self._pending, []
        return pending

    def requeue(self, entries: list[JournalEntry]) -> None:
        """Put back entries a failed write did not store, ahead of newer ones."""
        self._pending[:0] = entries

    def restore(self, entries: list[JournalEntry]) -> None:
        """Rebuild from a journal without re-queueing what is already on disk."""
        for entry in entries:
            if entry.op == "add":
                self._numbers.add(entry.number)
            else:
                self._numbers.discard(entry.number)

    def import_csv(self, path: Path, ts: float) -> int:
        """Add every row of a CSV with a ``number`` column; returns the numbers added."""
        before = len(self._numbers)
        for number in read_csv(path, self._region):
            self.add(number, ts, source=f"csv:{path.name}")
        return len(self._numbers) - before


def read_csv(path: Path, default_region: str) -> list[str]:
    """The ``number`` column of a CSV; a bad row is one error naming file, line and column."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = [h.strip().lower() for h in next(reader, [])]
            if "number" not in header:
                raise PolicyError(f"{path}:1: no 'number' column in the header {header}")
            column = header.index("number")
            numbers: list[str] = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # blank lines are harmless
                value = row[column].strip() if column < len(row) else ""
                if not is_phone_number(value, default_region):
                    raise PolicyError(
                        f"{path}:{reader.line_num}: column {column + 1} (number): "
                        f"{value!r} is not a phone number"
                    )
                numbers.append(value)
            return numbers
    except OSError as err:
        raise PolicyError(f"{path}: cannot read ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise PolicyError(f"{path}: not UTF-8 text") from err


class OptOutJournal:
    """``<data_dir>/optouts.jsonl``; blocking I/O, so call it at start or from a thread."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / JOURNAL_NAME

    def load(self) -> list[JournalEntry]:
        if not self.path.exists():
            return []
        lines = [
            (no, line)
            for no, line in enumerate(self.path.read_text("utf-8").splitlines(), 1)
            if line.strip()
        ]
        entries: list[JournalEntry] = []
        for index, (line_no, line) in enumerate(lines):
            try:
                entries.append(JournalEntry(**json.loads(line)))
            except (ValueError, TypeError) as err:
                if index == len(lines) - 1:
                    break  # a write cut short by a crash: everything before it still counts
                raise PolicyError(f"{self.path}:{line_no}: bad journal line ({err})") from err
        return entries

    def append(self, entries: list[JournalEntry]) -> None:
        if not entries:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(asdict(e)) + "\n" for e in entries)
            handle.flush()
