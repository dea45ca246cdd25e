"""Contact frequency: attempts per number in a rolling day and week, site-wide and per seat.

Each key keeps one deque of attempt times per window; old times leave from the left as new
ones arrive, so checking and recording are O(1) amortised.  Windows are half-open: an attempt
exactly 24 h old no longer counts against the day.

With a data directory the attempts survive a restart: :class:`FrequencyJournal` appends them
to ``frequency.jsonl`` (written by the compliance service's timer in a worker thread, like the
opt-out journal) and replays the last week at start.  Caps only need equality, so numbers are
keyed by a keyed BLAKE2b hash rather than kept in clear: the key lives in ``frequency.key``
(mode 0600) next to the journal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import structlog

from ctid.compliance.settings import Cap
from ctid.errors import PolicyError

DAY = 86_400.0
WEEK = 7 * DAY
KEEP_SECONDS = WEEK
"""The longest window: older attempts can break no cap and are not restored."""
JOURNAL_NAME = "frequency.jsonl"
KEY_NAME = "frequency.key"
KEY_BYTES = 32

_log = structlog.get_logger(__name__)


class RollingCounter:
    """Times per key inside ``(now - span, now]``."""

    def __init__(self, span: float) -> None:
        self._span = span
        self._times: dict[Hashable, deque[float]] = {}

    def count(self, key: Hashable, now: float) -> int:
        times = self._times.get(key)
        if times is None:
            return 0
        horizon = now - self._span
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._times[key]  # numbers dialled once must not pile up forever
            return 0
        return len(times)

    def add(self, key: Hashable, now: float) -> None:
        self._times.setdefault(key, deque()).append(now)

    def __bool__(self) -> bool:
        return bool(self._times)


class CappedCounter:
    """A :class:`Cap` (per day, per week) over keys."""

    def __init__(self, cap: Cap) -> None:
        self._limits = [
            (limit, RollingCounter(span), label)
            for limit, span, label in ((cap.per_day, DAY, "24 h"), (cap.per_week, WEEK, "7 days"))
            if limit is not None
        ]

    def violation(self, key: Hashable, now: float) -> str | None:
        for limit, counter, label in self._limits:
            done = counter.count(key, now)
            if done >= limit:
                return f"{done} attempts in {label} (cap {limit})"
        return None

    def add(self, key: Hashable, now: float) -> None:
        for _, counter, _ in self._limits:
            counter.add(key, now)

    def __bool__(self) -> bool:
        return any(counter for _, counter, _ in self._limits)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One journalled attempt: ``key`` is the number's keyed hash, never the number."""

    key: str
    seat: str | None
    ts: float


class FrequencyCaps:
    def __init__(self, site: Cap, seat: Cap) -> None:
        self._site = CappedCounter(site)
        self._seat = CappedCounter(seat)
        self._secret: bytes | None = None
        self._pending: list[Attempt] | None = None
        """Attempts not yet journalled; None while there is no journal."""

    def violation(self, number: str, seat: str | None, now: float) -> str | None:
        """``number`` is E.164, so ``0720…`` and ``+1720…`` count as one callee."""
        key = self._key(number)
        reason = self._site.violation(key, now)
        if reason is not None:
            return f"site-wide: {reason}"
        if seat is not None and (reason := self._seat.violation((seat, key), now)):
            return f"seat {seat}: {reason}"
        return None

    def record(self, number: str, seat: str | None, now: float) -> None:
        key = self._key(number)
        self._count(key, seat, now)
        if self._pending is not None:
            self._pending.append(Attempt(key, seat, now))

    # --- journal --------------------------------------------------------------------------

    def keep_journal(self, secret: bytes) -> None:
        """Key numbers by their hash from now on and queue each attempt for the journal.

        Call before the first attempt: counts kept under the plain numbers would not match.
        """
        if self._site or self._seat:
            raise RuntimeError("keep_journal() after attempts were counted")
        self._secret = secret
        self._pending = []

    def restore(self, attempts: Iterable[Attempt]) -> None:
        """Count journalled attempts again (oldest first) without queueing them."""
        for attempt in sorted(attempts, key=lambda a: a.ts):
            self._count(attempt.key, attempt.seat, attempt.ts)

    def drain(self) -> list[Attempt]:
        pending = self._pending
        if not pending:
            return []
        self._pending = []
        return pending

    def requeue(self, attempts: list[Attempt]) -> None:
        """Put back attempts a failed write did not store, ahead of newer ones."""
        if self._pending is not None:
            self._pending[:0] = attempts

    def _key(self, number: str) -> str:
        if self._secret is None:
            return number
        return number_key(number, self._secret)

    def _count(self, key: str, seat: str | None, now: float) -> None:
        self._site.add(key, now)
        if seat is not None:
            self._seat.add((seat, key), now)


def number_key(number: str, secret: bytes) -> str:
    """A keyed hash of an E.164 number: equal numbers, equal keys; the number not recoverable."""
    return hashlib.blake2b(number.encode(), key=secret, digest_size=16).hexdigest()


class FrequencyJournal:
    """``<data_dir>/frequency.jsonl`` and its hash key; blocking I/O: at start or in a thread."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / JOURNAL_NAME
        self.key_path = data_dir / KEY_NAME

    def secret(self) -> bytes:
        """The hash key, created (random, mode 0600) on first use."""
        try:
            self.key_path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(secrets.token_bytes(KEY_BYTES))
            key = self.key_path.read_bytes()
            mode = stat.S_IMODE(self.key_path.stat().st_mode)
        except OSError as err:
            raise PolicyError(f"{self.key_path}: cannot create or read ({err.strerror})") from err
        if not 16 <= len(key) <= 64:
            raise PolicyError(f"{self.key_path}: expected 16 to 64 bytes, found {len(key)}")
        if mode & 0o077:
            _log.warning("frequency_key_readable", path=str(self.key_path), mode=oct(mode))
        return key

    def load(self, now: float) -> tuple[list[Attempt], int]:
        """(attempts younger than a week at ``now``, how many older ones were left out)."""
        if not self.path.exists():
            return [], 0
        lines = [
            (no, line)
            for no, line in enumerate(self.path.read_text("utf-8").splitlines(), 1)
            if line.strip()
        ]
        horizon = now - KEEP_SECONDS
        kept: list[Attempt] = []
        for index, (line_no, line) in enumerate(lines):
            try:
                attempt = _attempt(json.loads(line))
            except (ValueError, TypeError) as err:
                if index == len(lines) - 1:
                    break  # a write cut short by a crash: everything before it still counts
                raise PolicyError(f"{self.path}:{line_no}: bad journal line ({err})") from err
            if attempt.ts > horizon:
                kept.append(attempt)
        return kept, len(lines) - len(kept)

    def compact(self, now: float) -> int:
        """Drop attempts older than a week from the file; how many were dropped."""
        kept, dropped = self.load(now)
        if dropped:
            self.rewrite(kept)
        return dropped

    def rewrite(self, attempts: list[Attempt]) -> None:
        """Replace the file's content with ``attempts``, atomically (temp file + rename)."""
        temp = self.path.with_name(self.path.name + ".tmp")
        with temp.open("w", encoding="utf-8") as handle:
            handle.writelines(_line(a) for a in attempts)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)

    def append(self, attempts: list[Attempt]) -> None:
        if not attempts:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(_line(a) for a in attempts)
            handle.flush()


def _attempt(data: object) -> Attempt:
    attempt = Attempt(**data) if isinstance(data, dict) else None
    if (
        attempt is None
        or not isinstance(attempt.key, str)
        or not isinstance(attempt.seat, str | None)
        or not isinstance(attempt.ts, int | float)
    ):
        raise ValueError("expected {key: str, seat: str | null, ts: number}")
    return attempt


def _line(attempt: Attempt) -> str:
    return json.dumps(asdict(attempt)) + "\n"
