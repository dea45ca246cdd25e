"""Online backup of a SQLite store, and the ``pg_dump`` line for a PostgreSQL one.

The copy goes through SQLite's backup API, page by page, inside one read transaction on the
source: in WAL mode the daemon keeps writing meanwhile, and the copy is the database as it
was when that transaction began.  Without it SQLite restarts a paged backup whenever another
connection writes, which under a busy writer never ends.  The copy is written next to the
destination under a temporary name (owner-only, it holds customer numbers), switched to a
rollback journal so it is one self-contained file, checked with ``PRAGMA integrity_check``,
and only then renamed to the destination.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from ctid.errors import InputError, StoreError
from ctid.store.engine import parse_url

PAGES_PER_STEP = 1024
"""4 MiB with the default page size: progress a few times per second, short lock hold."""

PageProgress = Callable[[int, int], None]
"""``(pages copied, pages in total)`` after each step."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size: int
    """Bytes of the copy."""
    pages: int
    seconds: float


def pg_dump_hint(url: str, dest: Path) -> str:
    """The ``pg_dump`` command for a PostgreSQL URL, password left out (.pgpass, PGPASSWORD)."""
    parsed = parse_url(url)
    bare = URL.create(
        "postgresql", parsed.username, None, parsed.host, parsed.port, parsed.database, parsed.query
    )
    target = shlex.quote(bare.render_as_string(hide_password=False))
    return f"pg_dump --format=custom --file {shlex.quote(str(dest))} {target}"


def backup_sqlite(
    source: Path,
    dest: Path,
    *,
    force: bool = False,
    pages_per_step: int = PAGES_PER_STEP,
    progress: PageProgress | None = None,
) -> BackupResult:
    """Copy the database at ``source`` to ``dest`` (blocking); refuse to replace a file
    unless ``force``."""
    if not source.is_file():
        raise StoreError(f"no database at {source}: nothing to back up")
    _check_dest(source, dest, force=force)
    started = time.monotonic()
    try:
        handle, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as err:
        raise InputError(f"{dest}: cannot write ({err.strerror})") from err
    os.close(handle)
    partial = Path(name)
    try:
        pages = _copy(source, partial, pages_per_step, progress)
        os.replace(partial, dest)
    except OSError as err:
        raise InputError(f"{dest}: cannot write ({err.strerror})") from err
    finally:
        for leftover in [
            partial,
            *(Path(f"{partial}{end}") for end in ("-journal", "-wal", "-shm")),
        ]:
            leftover.unlink(missing_ok=True)
    return BackupResult(dest, dest.stat().st_size, pages, time.monotonic() - started)


def _check_dest(source: Path, dest: Path, *, force: bool) -> None:
    if dest.is_dir():
        raise InputError(f"{dest} is a directory: give the backup file's name")
    if dest.exists():
        if dest.resolve() == source.resolve():
            raise InputError(f"{dest} is the database itself")
        if not force:
            raise InputError(f"{dest} exists: give --force to replace it")
    if not dest.parent.is_dir():
        raise InputError(f"{dest}: cannot write (no directory {dest.parent})")


def _copy(source: Path, target: Path, pages_per_step: int, progress: PageProgress | None) -> int:
    """Back ``source`` up into the empty file ``target``; the number of pages copied."""
    copied = 0

    def step(_status: int, remaining: int, total: int) -> None:
        nonlocal copied
        copied = total - remaining
        if progress is not None:
            progress(copied, total)

    try:
        # mode=rw: a missing file is an error, not a new empty database.
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=5.0)
    except sqlite3.Error as err:
        raise StoreError(f"cannot open {source}: {err}") from err
    with contextlib.closing(src), contextlib.closing(sqlite3.connect(target)) as dst:
        src.isolation_level = None  # BEGIN/COMMIT below are ours
        try:
            # The read transaction pins the snapshot the copy is taken from (see above).
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
            src.backup(dst, pages=pages_per_step, progress=step)
            src.execute("COMMIT")
        except sqlite3.Error as err:
            raise StoreError(f"backup of {source} failed: {err}") from err
        try:
            dst.execute("PRAGMA journal_mode=DELETE")
            verdict = [row[0] for row in dst.execute("PRAGMA integrity_check")]
        except sqlite3.Error as err:
            raise StoreError(f"cannot check the copy: {err}") from err
    if verdict != ["ok"]:
        raise StoreError(f"the copy failed its integrity check: {verdict[0]}")
    return copied
