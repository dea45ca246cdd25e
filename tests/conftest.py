"""Shared test set-up."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A daemon started by a test keeps its SQLite store under the test's own directory, so no
    # run restores another run's calls into today's tallies.
    monkeypatch.setenv("CTID_STORE__DATA_DIR", str(tmp_path / "store"))
