"""Reconnect delays: exponential growth, a cap, and full jitter."""

from __future__ import annotations

import random
from collections.abc import Callable

_MAX_EXPONENT = 64
"""2**64 × any sane initial delay is far above any cap; beyond it float conversion overflows."""


def backoff_delay(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Full jitter (uniform in ``[0, min(maximum, initial * 2**attempt))``) spreads the reconnects of
    many daemons after a pbx restart instead of having them all hit it at the same instant.
    """
    ceiling = min(maximum, initial * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))
    return ceiling * rng()
