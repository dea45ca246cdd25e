"""Carrier interception: a trunk whose carrier suddenly refuses far more outbound attempts.

Outbound attempts are counted per trunk in hour buckets of the PBX's event time (whole hours
since the epoch, so UTC hours).  An attempt is *refused* when it was not answered and its dial
status (``CONGESTION``, ``CHANUNAVAIL``) or its Q.850 cause (unallocated, no circuit, call
rejected, ...) is in the configured sets — a carrier blocking or intercepting the site's
calls, not a customer who is busy or does not pick up.

A spike: in the current bucket ``attempts >= min_attempts``, ``share >= floor`` and
``share >= factor × baseline share``, the baseline being the previous ``baseline_hours``
buckets of the same trunk together (no history: a baseline of 0, so the floor decides).
It is reported once per trunk and bucket, when it first crosses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from ctid.tracker.endpoints import split_channel
from ctid.tracker.model import Call, Outcome

HOUR = 3600.0


def trunk_of(channel: str) -> str:
    """``PJSIP/carrier-0000001a`` → ``PJSIP/carrier``: the trunk without the channel's sequence."""
    tech, endpoint = split_channel(channel)
    return f"{tech}/{endpoint}" if endpoint else channel


def refusal(call: Call, statuses: Collection[str], causes: Collection[int]) -> str | None:
    """What marks an unanswered attempt as refused (``cause 34``, ``CHANUNAVAIL``), or None."""
    if call.outcome is Outcome.ANSWERED:
        return None
    if call.cause is not None and call.cause in causes:
        return f"cause {call.cause}"
    if call.dial_status in statuses:
        return call.dial_status
    return None


@dataclass(slots=True)
class _Bucket:
    attempts: int = 0
    refused: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    reported: bool = False


@dataclass(frozen=True, slots=True)
class Spike:
    trunk: str
    hour: int
    """Bucket index: event time // 3600."""
    attempts: int
    refused: int
    baseline_attempts: int
    baseline_refused: int
    reasons: tuple[tuple[str, int], ...]
    """(reason, attempts) in this bucket, most frequent first."""

    @property
    def share(self) -> float:
        return self.refused / self.attempts

    @property
    def baseline_share(self) -> float:
        return self.baseline_refused / self.baseline_attempts if self.baseline_attempts else 0.0


class CarrierWatch:
    def __init__(self, min_attempts: int, factor: float, floor: float, baseline_hours: int) -> None:
        self._min_attempts, self._factor, self._floor = min_attempts, factor, floor
        self._baseline_hours = baseline_hours
        self._trunks: dict[str, dict[int, _Bucket]] = {}

    def record(self, trunk: str, ts: float, refused: str | None) -> Spike | None:
        """Count one attempt (``refused``: why it was refused, or None); a :class:`Spike` when
        this attempt made the trunk's current hour cross."""
        hour = int(ts // HOUR)
        buckets = self._trunks.setdefault(trunk, {})
        for old in [h for h in buckets if h < hour - self._baseline_hours]:
            del buckets[old]  # out of every baseline from now on
        bucket = buckets.setdefault(hour, _Bucket())
        bucket.attempts += 1
        if refused is not None:
            bucket.refused += 1
            bucket.reasons[refused] += 1
        if bucket.reported or bucket.attempts < self._min_attempts:
            return None
        past = [b for h, b in buckets.items() if hour - self._baseline_hours <= h < hour]
        spike = Spike(
            trunk, hour, bucket.attempts, bucket.refused,
            sum(b.attempts for b in past), sum(b.refused for b in past),
            tuple(bucket.reasons.most_common()),
        )  # fmt: skip
        if spike.share < self._floor or spike.share < self._factor * spike.baseline_share:
            return None
        bucket.reported = True
        return spike


def describe(spike: Spike, baseline_hours: int) -> str:
    """``trunk PJSIP/carrier: 12/40 outbound attempts refused this hour (30.0%: cause 34 x9,
    CHANUNAVAIL x3) vs 2.5% in the previous 24 h``."""
    reasons = ", ".join(f"{reason} x{count}" for reason, count in spike.reasons)
    return (
        f"trunk {spike.trunk}: {spike.refused}/{spike.attempts} outbound attempts refused this "
        f"hour ({spike.share:.1%}: {reasons}) vs {spike.baseline_share:.1%} in the previous "
        f"{baseline_hours} h"
    )
