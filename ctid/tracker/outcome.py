"""How a finished call ended, from Dial status, Q.850 cause and what the seats did."""

from __future__ import annotations

from ctid.tracker.model import Call, Direction, Outcome

# Q.850 causes that mean "this number cannot be reached" rather than a customer's choice:
# unallocated, no route, channel unacceptable, number changed, out of order, invalid format,
# network out of order, facility rejected, incompatible destination, service unavailable...
FAILED_CAUSES = frozenset({1, 2, 3, 6, 22, 27, 28, 29, 38, 41, 58, 63, 65, 66, 79, 88, 111, 127})
BUSY_CAUSES = frozenset({17})
CONGESTION_CAUSES = frozenset({34, 42, 44})

_DIAL_STATUS_OUTCOMES = {
    "BUSY": Outcome.BUSY,
    "CONGESTION": Outcome.CONGESTION,
    "CHANUNAVAIL": Outcome.FAILED,
    "NOANSWER": Outcome.NO_ANSWER,
    "CANCEL": Outcome.NO_ANSWER,
}


def is_answered(call: Call) -> bool:
    if call.segments:
        return True
    if call.direction is Direction.OUTBOUND:
        return call.answered_at is not None
    return call.fax and call.answered_at is not None


def classify(call: Call) -> Outcome:
    if is_answered(call):
        return Outcome.ANSWERED
    if call.direction is Direction.INBOUND:
        return Outcome.ABANDONED
    cause = call.cause
    if cause in FAILED_CAUSES:
        return Outcome.FAILED
    by_status = _DIAL_STATUS_OUTCOMES.get(call.dial_status)
    if by_status is not None:
        return by_status
    if cause in BUSY_CAUSES:
        return Outcome.BUSY
    if cause in CONGESTION_CAUSES:
        return Outcome.CONGESTION
    return Outcome.NO_ANSWER
