"""Customer numbers are personal data: mask them wherever ctid shows or publishes them."""

from __future__ import annotations


def mask_number(number: str, *, show: bool = False) -> str:
    """``13800138000`` → ``138******00``; short internal numbers (≤ 4 digits) stay readable."""
    if show or len(number) <= 4:
        return number
    keep_head = 3 if len(number) >= 8 else 1
    keep_tail = 2
    hidden = len(number) - keep_head - keep_tail
    return number[:keep_head] + "*" * hidden + number[-keep_tail:]
