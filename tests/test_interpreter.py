"""The interpreter setting `ctid run` starts with."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from ctid.interpreter import SWITCH_INTERVAL_S, favour_the_event_loop


@pytest.fixture
def restored_switch_interval() -> Iterator[float]:
    before = sys.getswitchinterval()
    yield before
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("restored_switch_interval")
def test_worker_threads_hand_the_lock_back_ten_times_sooner_than_by_default() -> None:
    sys.setswitchinterval(0.005)  # CPython's default
    favour_the_event_loop()
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert pytest.approx(SWITCH_INTERVAL_S) == sys.getswitchinterval()
