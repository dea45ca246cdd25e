"""``ctid backup``: an online copy of the SQLite store while rows keep arriving."""

from __future__ import annotations

import io
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from ctid.cli import main
from ctid.store.backup import backup_sqlite
from ctid.store.retention_cli import ProgressLines
from ctid.store.rows import gap_row
from ctid.store.runtime import open_existing
from ctid.store.upsert import write_rows
from tests.store.support import count, migrated, store_capture


@pytest.fixture
def database(sqlite_url: str) -> Path:
    with migrated(sqlite_url) as engine:
        store_capture(engine, "mixed_busy_period", pbx="pbx")
    return Path(sqlite_url.removeprefix("sqlite:///"))


class Inserter(threading.Thread):
    """Writes one gap row per transaction, as the daemon's writer would, until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.written = 0
        self.stop = threading.Event()
        self.first = threading.Event()

    def run(self) -> None:
        with migrated(self.url) as engine:
            while not self.stop.is_set():
                start = 1_700_000_000.0 + self.written
                write_rows(engine, [gap_row("writer", start, start + 0.5)])
                self.written += 1
                self.first.set()


def sqlite_rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as connection:
        found: int = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    connection.close()
    return found


def test_a_backup_while_a_writer_inserts_is_whole_and_consistent(
    database: Path, sqlite_url: str, tmp_path: Path
) -> None:
    inserter = Inserter(sqlite_url)
    inserter.start()
    steps: list[tuple[int, int]] = []
    try:
        assert inserter.first.wait(10)
        committed = sqlite_rows(database, "gaps")
        during = inserter.written

        def step(done: int, total: int) -> None:
            steps.append((done, total))
            if len(steps) == 2:  # let the writer commit while the copy is half done
                target = inserter.written + 5
                while inserter.written < target and inserter.is_alive():
                    threading.Event().wait(0.001)

        result = backup_sqlite(database, tmp_path / "copy.db", pages_per_step=1, progress=step)
        during = inserter.written - during
    finally:
        inserter.stop.set()
        inserter.join(10)
    copy = tmp_path / "copy.db"
    assert during >= 5  # the writer was not blocked by the backup
    assert len(steps) == result.pages > 10  # page by page
    assert steps[-1] == (result.pages, result.pages)
    with sqlite3.connect(copy) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    connection.close()
    assert sqlite_rows(copy, "gaps") >= committed
    assert sqlite_rows(copy, "calls") == 95
    assert result.size == copy.stat().st_size
    # One self-contained file, readable only by its owner, at the current schema.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("copy")) == ["copy.db"]
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    engine = open_existing(f"sqlite:///{copy}")
    try:
        assert count(engine, "cdrs") == 163
    finally:
        engine.dispose()


def test_the_command_reports_the_size_and_refuses_to_overwrite(
    database: Path, sqlite_url: str, tmp_path: Path, capsys: Any
) -> None:
    dest = tmp_path / "backup.db"
    assert main(["backup", str(dest), "--db", sqlite_url]) == 0
    out = capsys.readouterr().out
    size = dest.stat().st_size
    assert out.startswith(f"{dest}: ")
    assert f"({size:,} bytes, " in out
    assert out.rstrip().endswith("integrity check ok")
    dest.write_bytes(b"older backup")
    assert main(["backup", str(dest), "--db", sqlite_url]) == 2
    assert capsys.readouterr().err == f"ctid: error: {dest} exists: give --force to replace it\n"
    assert dest.read_bytes() == b"older backup"
    assert main(["backup", str(dest), "--db", sqlite_url, "--force"]) == 0
    assert sqlite_rows(dest, "calls") == 95


@pytest.mark.parametrize(
    ("dest", "db", "message"),
    [
        ("missing/dir/copy.db", None, "copy.db: cannot write (no directory "),
        (".", None, "is a directory: give the backup file's name"),
        ("copy.db", "sqlite:///{tmp}/none.db", "no database at "),
        ("ctid.db", None, "ctid.db is the database itself"),
        (
            "copy.dump",
            "postgresql://ctid:s3cret@db.example:5433/ctid",
            "for PostgreSQL run pg_dump --format=custom --file {tmp}/copy.dump "
            "postgresql://ctid@db.example:5433/ctid (see docs/operations.md)",
        ),
    ],
)
def test_refusals_are_one_line_and_exit_2(
    dest: str,
    db: str | None,
    message: str,
    database: Path,
    sqlite_url: str,
    tmp_path: Path,
    capsys: Any,
) -> None:
    url = db.format(tmp=tmp_path) if db else sqlite_url
    argv = ["backup", str(tmp_path / dest), "--db", url, "--force"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("ctid: error: ")
    assert message.format(tmp=tmp_path) in err
    assert "s3cret" not in err
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name or p.name.startswith("copy")]


def test_postgresql_needs_no_connection_to_be_told_about_pg_dump(
    pg_url: str, tmp_path: Path, capsys: Any
) -> None:
    assert main(["backup", str(tmp_path / "x.dump"), "--db", pg_url]) == 2
    err = capsys.readouterr().err
    assert "pg_dump --format=custom --file" in err
    assert "postgresql://postgres@" in err  # libpq's URL, not SQLAlchemy's driver name


def test_help_explains_the_backup(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        main(["backup", "--help"])
    out = capsys.readouterr().out
    for text in ("DEST", "--force", "integrity_check", "pg_dump"):
        assert text in out


def test_progress_lines_wait_for_a_long_run() -> None:
    quiet, chatty = io.StringIO(), io.StringIO()
    slow, fast = ProgressLines(3600, quiet), ProgressLines(0, chatty)
    for n in range(3):
        slow(f"step {n}")
        fast(f"step {n}")
    assert quiet.getvalue() == ""
    assert chatty.getvalue().splitlines() == ["step 0", "step 1", "step 2"]
