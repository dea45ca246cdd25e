"""A share over a rolling time window: seen / (seen + missed), in one-minute buckets."""

from __future__ import annotations

COMPLETENESS_WINDOW_S = 3600.0
"""Completeness is the share over the external calls that ended in the last hour."""
_BUCKET_S = 60.0


class RollingShare:
    """seen / (seen + missed) over the last ``window`` seconds, in one-minute buckets."""

    def __init__(self, window: float = COMPLETENESS_WINDOW_S) -> None:
        self.window = window
        self._buckets: dict[int, list[int]] = {}
        self._seen = 0
        self._missed = 0
        self._counted_any = False

    def add(self, at: float, now: float, *, seen: int = 0, missed: int = 0) -> None:
        if at < now - self.window or seen + missed == 0:
            return
        bucket = self._buckets.setdefault(int(at // _BUCKET_S), [0, 0])
        bucket[0] += seen
        bucket[1] += missed
        self._seen += seen
        self._missed += missed
        self._counted_any = True

    def expire(self, now: float) -> None:
        oldest = int((now - self.window) // _BUCKET_S)
        for key in [k for k in self._buckets if k < oldest]:
            seen, lost = self._buckets.pop(key)
            self._seen -= seen
            self._missed -= lost

    @property
    def ratio(self) -> float | None:
        """``None`` until a first external call was counted; 1.0 for an empty window."""
        if not self._counted_any:
            return None
        total = self._seen + self._missed
        return self._seen / total if total else 1.0
