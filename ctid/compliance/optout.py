"""Do-not-call list: an in-memory map of E.164 numbers with a JSON-lines journal on disk.

Lookups and changes touch memory only; changes are queued as journal entries that the
compliance service's timer appends to ``optouts.jsonl`` in a worker thread
(:mod:`ctid.compliance.service`), so the decision path never waits on the disk.  Replaying
the journal at start restores the list.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
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
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    """Why a number is on the list: since when, who put it there, and their reason."""

    since: float
    source: str
    reason: str | None = None


class OptOutList:
    def __init__(self, default_region: str) -> None:
        self._region = default_region
        self._numbers: dict[str, Listing] = {}
        self._pending: list[JournalEntry] = []

    def __contains__(self, number: str) -> bool:
        return normalise(number, self._region) in self._numbers

    def __len__(self) -> int:
        return len(self._numbers)

    def listing(self, number: str) -> Listing | None:
        return self._numbers.get(normalise(number, self._region))

    def add(self, number: str, ts: float, source: str = "api", reason: str | None = None) -> str:
        e164 = normalise(number, self._region)
        self.add_e164(e164, ts, source, reason)
        return e164

    def add_e164(self, e164: str, ts: float, source: str, reason: str | None = None) -> bool:
        """Add an already normalised number; False if it was listed before."""
        if e164 in self._numbers:
            return False
        self._numbers[e164] = Listing(ts, source, reason)
        self._pending.append(JournalEntry("add", e164, ts, source, reason))
        return True

    def remove(
        self, number: str, ts: float, source: str = "api", reason: str | None = None
    ) -> bool:
        e164 = normalise(number, self._region)
        if self._numbers.pop(e164, None) is None:
            return False
        self._pending.append(JournalEntry("remove", e164, ts, source, reason))
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
                self._numbers[entry.number] = Listing(entry.ts, entry.source, entry.reason)
            else:
                self._numbers.pop(entry.number, None)

    def import_csv(self, path: Path, ts: float) -> int:
        """Add every row of a CSV with a ``number`` column; returns the numbers added."""
        before = len(self._numbers)
        for number in read_csv(path, self._region):
            self.add(number, ts, source=f"csv:{path.name}")
        return len(self._numbers) - before


class CsvError(ValueError):
    """A CSV that cannot be read as a list of numbers; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


def csv_numbers(text: str) -> Iterator[tuple[int, int, str]]:
    """(line, column, value) of the ``number`` column of each non-blank row, both 1-based.

    Values are not checked as numbers here; a header without ``number`` or text the
    ``csv`` module cannot split raises :class:`CsvError`.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        if "number" not in header:
            raise CsvError(1, f"no 'number' column in the header {header}")
        column = header.index("number")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank lines are harmless
            value = row[column].strip() if column < len(row) else ""
            yield reader.line_num, column + 1, value
    except csv.Error as err:
        raise CsvError(reader.line_num, f"malformed CSV ({err})") from err


def read_csv(path: Path, default_region: str) -> list[str]:
    """The ``number`` column of a CSV; a bad row is one error naming file, line and column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise PolicyError(f"{path}: cannot read ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise PolicyError(f"{path}: not UTF-8 text") from err
    numbers: list[str] = []
    try:
        for line, column, value in csv_numbers(text):
            if not is_phone_number(value, default_region):
                raise PolicyError(
                    f"{path}:{line}: column {column} (number): {value!r} is not a phone number"
                )
            numbers.append(value)
    except CsvError as err:
        raise PolicyError(f"{path}:{err.line}: {err.message}") from err
    return numbers


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
            handle.writelines(json.dumps(_journal_line(e)) + "\n" for e in entries)
            handle.flush()


def _journal_line(entry: JournalEntry) -> dict[str, object]:
    # Entries without a reason are written as before reasons existed.
    return {k: v for k, v in asdict(entry).items() if v is not None}
