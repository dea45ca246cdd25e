"""The spool file: order, bounds, and what a crash can leave behind."""

from __future__ import annotations

from pathlib import Path

from ctid.store.rows import StoreRow
from ctid.store.spool import Spool, Unit


def unit(i: int, rows: int = 1) -> Unit:
    return tuple(StoreRow("gaps", {"pbx": f"p{j}", "started_at": i, "ended_at": None})
                 for j in range(rows))  # fmt: skip


def test_units_come_back_in_order_and_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.jsonl", max_rows=100)
    assert spool.append([unit(1, 3), unit(2), unit(3, 2)]) == 0
    assert spool.unread == 6
    assert spool.read(2) == [unit(1, 3)]  # a unit is never split
    assert spool.read(10) == [unit(2), unit(3, 2)]
    assert spool.unread == 0


def test_rows_past_the_bound_are_refused_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.jsonl", max_rows=4)
    assert spool.append([unit(1, 3), unit(2, 2), unit(3)]) == 3  # unit 2 does not fit whole
    assert spool.read(10) == [unit(1, 3)]


def test_a_spool_left_by_a_crash_is_adopted_and_a_torn_line_skipped(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    Spool(path, 100).append([unit(1), unit(2, 2)])
    with path.open("a") as handle:
        handle.write('1\t[["gaps", {"pbx": "torn"')  # the write a crash cut short
    reopened = Spool(path, 100)
    assert reopened.open() == 4
    reopened.append([unit(3)])
    assert reopened.read(100) == [unit(1), unit(2, 2), unit(3)]
    assert reopened.corrupt == 1


def test_release_removes_the_file_only_when_all_is_read(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.jsonl", 100)
    spool.append([unit(1), unit(2)])
    spool.read(1)
    spool.release()
    assert spool.path.exists()
    spool.read(1)
    spool.release()
    assert not spool.path.exists()
    assert not spool.holds_file


def test_reading_twice_after_a_restart_replays_rather_than_loses(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    first = Spool(path, 100)
    first.append([unit(1), unit(2)])
    assert first.read(1) == [unit(1)]  # read, then the process dies before storing it
    second = Spool(path, 100)
    second.open()
    assert second.read(10) == [unit(1), unit(2)]


def test_the_spool_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "new" / "s.jsonl", 100)
    spool.append([unit(1)])
    assert spool.path.stat().st_mode & 0o777 == 0o600
    assert spool.path.parent.stat().st_mode & 0o777 == 0o700
