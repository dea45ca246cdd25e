"""Follow-up claims of a period, verified, per seat: what the period reports count.

Each local day is judged by :func:`ctid.store.followups_verify.verify_day`, the rule
``ctid followups report`` uses. A day's ``follow_ups`` actual is the number of distinct
customers (number hashes) of the seat's verified claims that day. Over the period: every claim
counts as claimed, verified or falsified; A and B are distinct customers of verified claims,
A winning for a customer claimed both ways.
Blocking: call from a worker thread in async code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, and_, func, select
from sqlalchemy.exc import SQLAlchemyError

from ctid.errors import StoreError
from ctid.policy.period import ClaimCounts
from ctid.store.followups_verify import Verdict, verify_day
from ctid.store.migrate import describe_error
from ctid.store.schema import follow_ups


@dataclass(frozen=True, slots=True)
class SeatClaims:
    per_day: dict[dt.date, int]
    """Distinct customers of verified claims, per local day."""
    counts: ClaimCounts


def period_verdicts(
    connection: Connection,
    days: Sequence[dt.date],
    tz: ZoneInfo,
    threshold: float,
) -> dict[dt.date, list[Verdict]]:
    """Every claim of ``days``, judged (claims and calls are both stored hashed: no key is
    needed to compare them)."""
    if not days or not _any_claims(connection, days[0], days[-1]):
        return {}
    return {day: verify_day(connection, day, tz, threshold) for day in days}


def _any_claims(connection: Connection, first: dt.date, last: dt.date) -> bool:
    within = and_(follow_ups.c.day >= first, follow_ups.c.day <= last)
    found = connection.execute(select(func.count()).select_from(follow_ups).where(within))
    return int(found.scalar_one()) > 0


def per_seat(verdicts: Mapping[dt.date, Iterable[Verdict]]) -> dict[str, SeatClaims]:
    """The verdicts of a period summed per seat (pure)."""
    claimed: dict[str, int] = {}
    verified_claims: dict[str, int] = {}
    verified: dict[str, dict[dt.date, set[str]]] = {}
    classes: dict[str, dict[str, str]] = {}
    for day, found in verdicts.items():
        for verdict in found:
            claim = verdict.claim
            claimed[claim.seat] = claimed.get(claim.seat, 0) + 1
            days = verified.setdefault(claim.seat, {})
            if not verdict.verified:
                continue
            verified_claims[claim.seat] = verified_claims.get(claim.seat, 0) + 1
            days.setdefault(day, set()).add(claim.number_hash)
            if claim.klass in ("A", "B"):
                known = classes.setdefault(claim.seat, {})
                known[claim.number_hash] = min(known.get(claim.number_hash, "B"), claim.klass)
    out: dict[str, SeatClaims] = {}
    for seat, count in claimed.items():
        by_day = {day: len(numbers) for day, numbers in verified[seat].items()}
        found_classes = list(classes.get(seat, {}).values())
        counts = ClaimCounts(
            claimed=count,
            verified=verified_claims.get(seat, 0),
            a_class=found_classes.count("A"),
            b_class=found_classes.count("B"),
        )
        out[seat] = SeatClaims(by_day, counts)
    return out


def read_period_claims(
    engine: Engine,
    days: Sequence[dt.date],
    tz: ZoneInfo,
    threshold: float,
) -> dict[str, SeatClaims]:
    """:func:`period_verdicts` summed per seat; a database error is one line."""
    try:
        with engine.connect() as connection:
            return per_seat(period_verdicts(connection, days, tz, threshold))
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the database: {describe_error(err)}") from err
