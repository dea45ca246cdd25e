"""Interpreter settings the daemon runs with: its event loop comes first.

Python lets a thread keep the interpreter lock for 5 ms while another waits for it.  The
store writer and the ``/metrics`` formatter run Python code in worker threads; with the
default, a frame that wakes the event loop while one of them holds the lock waits up to 5 ms
before the loop can decide on it, five times the compliance goal (docs/performance.md).
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL_S = 0.0005
"""At most this long before a worker thread hands the interpreter lock back to the loop."""


def favour_the_event_loop() -> None:
    """Shorten the interpreter's switch interval (process-wide) to :data:`SWITCH_INTERVAL_S`."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
