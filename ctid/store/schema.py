"""The store's tables (SQLAlchemy Core), on one :data:`metadata` that Alembic migrates.

Times are UTC instants (:class:`UtcTimestamp`); local days are a reporting concern and are
computed from the site's time zone when reading.  Every table the writer fills has a natural
primary key, so writing the same row twice (a replayed capture, a restart mid-day, a retried
batch) updates it instead of adding a second one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so later migrations can refer to them on every backend."""

metadata = MetaData(naming_convention=NAMING)


class UtcTimestamp(TypeDecorator[dt.datetime]):
    """An instant: binds epoch seconds or aware datetimes, reads back aware UTC datetimes.

    PostgreSQL keeps ``timestamptz``; SQLite has no zones, so UTC wall time is stored there.
    Epoch floats are accepted because the writer's rows stay JSON-friendly for the spool.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: dt.datetime | float | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, int | float):
            value = dt.datetime.fromtimestamp(value, dt.UTC)
        elif value.tzinfo is None:
            raise ValueError("naive datetime: a stored instant needs a time zone")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class IsoDate(TypeDecorator[dt.date]):
    """A calendar date that also binds ``YYYY-MM-DD`` text (rows stay JSON-friendly)."""

    impl = Date
    cache_ok = True

    def process_bind_param(self, value: dt.date | str | None, dialect: Dialect) -> dt.date | None:
        return dt.date.fromisoformat(value) if isinstance(value, str) else value


def _pbx() -> Column[str]:
    return Column("pbx", String(64), primary_key=True)


pbxs = Table(
    "pbxs",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("host", String(255)),
    Column("updated_at", UtcTimestamp()),
)

seats = Table(
    "seats",
    metadata,
    Column("seat", String(64), primary_key=True),
    Column("name", String(128), nullable=False, default=""),
    Column("team", String(64), nullable=False, default="default"),
    Column("kind", String(16), nullable=False, default="human"),
    Column("hire_date", Date),
    Column("updated_at", UtcTimestamp()),
)

calls = Table(
    "calls",
    metadata,
    _pbx(),
    Column("linkedid", String(64), primary_key=True),
    Column("direction", String(8), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("seat", String(64)),
    Column("placed_by", String(64)),
    # Never the number in clear (ctid.store.number_protect): its keyed hash (NULL: the call
    # had no number), the masked form, and, with an encryption key, the E.164 number sealed.
    Column("remote_hash", String(64)),
    Column("remote_masked", String(64), nullable=False, default=""),
    Column("remote_sealed", Text),
    Column("started_at", UtcTimestamp(), nullable=False),
    Column("answered_at", UtcTimestamp()),
    Column("ended_at", UtcTimestamp()),
    Column("outcome", String(16)),
    Column("cause", Integer),
    Column("ring_seconds", Float),
    Column("talk_seconds", Float, nullable=False, default=0.0),
    Column("hold_seconds", Float, nullable=False, default=0.0),
    Column("interrupted", Boolean, nullable=False, default=False),
    Column("backfilled", Boolean, nullable=False, default=False),
    Index(None, "started_at"),
    Index(None, "seat", "started_at"),
)

call_segments = Table(
    "call_segments",
    metadata,
    _pbx(),
    Column("linkedid", String(64), primary_key=True),
    Column("seat_channel", String(128), primary_key=True),
    Column("ext_channel", String(128), primary_key=True),
    Column("seat", String(64), nullable=False),
    Column("talk_seconds", Float, nullable=False),
    Column("hold_seconds", Float, nullable=False),
    Column("started_at", UtcTimestamp()),
    Column("ended_at", UtcTimestamp()),
    # [[start, end], ...] in epoch seconds: needed to split talk exactly at local midnight.
    Column("talk_intervals", JSON, nullable=False),
    Column("hold_intervals", JSON, nullable=False),
    ForeignKeyConstraint(["pbx", "linkedid"], ["calls.pbx", "calls.linkedid"], ondelete="CASCADE"),
    Index(None, "seat", "started_at"),
)

internal_talk = Table(
    "internal_talk",
    metadata,
    _pbx(),
    Column("seat", String(64), primary_key=True),
    Column("started_at", UtcTimestamp(), primary_key=True),
    Column("ended_at", UtcTimestamp(), nullable=False),
    Column("seconds", Float, nullable=False),
)

internal_calls = Table(
    "internal_calls",
    metadata,
    _pbx(),
    Column("seat", String(64), primary_key=True),
    Column("placed_at", UtcTimestamp(), primary_key=True),
    Column("target_seat", String(64), nullable=False),
)

cdrs = Table(
    "cdrs",
    metadata,
    _pbx(),
    Column("uniqueid", String(64), primary_key=True),
    # One uniqueid has several CDRs (queue members, Busy() after Dial): cdr_manager's
    # Sequence tells them apart, else the event's microsecond timestamp does.
    Column("seq", String(32), primary_key=True),
    Column("linkedid", String(64), nullable=False),
    Column("channel", String(128), nullable=False),
    Column("dest_channel", String(128), nullable=False),
    Column("disposition", String(16), nullable=False),
    Column("billsec", Integer, nullable=False),
    Column("duration", Integer, nullable=False),
    Column("started_at", UtcTimestamp()),
    Column("answered_at", UtcTimestamp()),
    Column("ended_at", UtcTimestamp()),
    Column("posted_at", UtcTimestamp(), nullable=False),
    Index(None, "pbx", "linkedid"),
    Index(None, "posted_at"),
)

gaps = Table(
    "gaps",
    metadata,
    _pbx(),
    Column("started_at", UtcTimestamp(), primary_key=True),
    Column("ended_at", UtcTimestamp()),
)

# --- audit tables: policy versions, compliance violations, quota adjustments ------------
# Written once, never updated: ``info["append_only"]`` makes the writer insert-if-absent on
# ``info["natural_key"]`` (the autoincrement ``id`` is unknown until the row is stored).

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("activated_at", UtcTimestamp(), nullable=False),
    Column("document", Text, nullable=False),
    info={"natural_key": ("digest",), "append_only": True},
)

violations = Table(
    "violations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # sha256 of (pbx, rule, time, linkedid, seat): a row sent twice (spool replay) is kept once.
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("pbx", String(64)),
    Column("linkedid", String(64)),
    Column("seat", String(64)),
    Column("rule", String(64), nullable=False),
    # The rule's mode (observe, warn, enforce); the action taken is in ``detail``.
    Column("severity", String(16), nullable=False),
    Column("at", UtcTimestamp(), nullable=False),
    # Team, masked number, action and outcome, policy version, reason: never the full number.
    Column("detail", JSON, nullable=False),
    Index(None, "seat", "at"),
    Index(None, "at"),
    info={"natural_key": ("fingerprint",), "append_only": True},
)

quota_adjustments = Table(
    "quota_adjustments",
    metadata,
    # Assigned by the daemon (the API answers with it before the row is written), continuing
    # from the largest stored id after a restart.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seat", String(64), nullable=False),
    Column("day", IsoDate(), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("hours", Float, nullable=False, default=0.0),
    Column("quota", String(32)),
    Column("value", Float),
    Column("revokes", Integer),
    Column("by", String(128), nullable=False),
    Column("at", UtcTimestamp(), nullable=False),
    Column("reason", Text, nullable=False),
    Index(None, "seat", "day"),
    info={"append_only": True},
)

# --- follow-ups and lead lists: numbers from outside ctid, kept as a keyed hash and masked ---
# (ctid.store.number_key); never the number itself.

follow_ups = Table(
    "follow_ups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seat", String(64), nullable=False),
    # The local day of ``at`` in the site's time zone: the day the claim is checked against.
    Column("day", IsoDate(), nullable=False),
    Column("at", UtcTimestamp(), nullable=False),
    Column("number_hash", String(64), nullable=False),
    Column("number_masked", String(64), nullable=False),
    Column("class", String(1)),
    Column("note", Text, nullable=False, default=""),
    Column("source", String(255), nullable=False),
    Column("imported_at", UtcTimestamp(), nullable=False),
    UniqueConstraint("seat", "at", "number_hash"),
    Index(None, "day", "seat"),
    # Imported twice (the same CRM export again): the stored claim stays, the copy is counted.
    info={"natural_key": ("seat", "at", "number_hash"), "append_only": True},
)

lead_lists = Table(
    "lead_lists",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    # The last import into the list, and how many numbers the list then held.
    Column("imported_at", UtcTimestamp(), nullable=False),
    Column("rows", Integer, nullable=False),
)

leads = Table(
    "leads",
    metadata,
    Column("list_id", Integer, primary_key=True, autoincrement=False),
    Column("number_hash", String(64), primary_key=True),
    Column("number_masked", String(64), nullable=False),
    ForeignKeyConstraint(["list_id"], ["lead_lists.id"], ondelete="CASCADE"),
    info={"append_only": True},
)

# --- revenue: amounts per seat imported from outside ctid (the pay estimate reads a month) ---

revenue = Table(
    "revenue",
    metadata,
    Column("seat", String(64), primary_key=True),
    # The date of the amount, or the first day of its month for a month total (span "month").
    Column("day", IsoDate(), primary_key=True),
    Column("span", String(5), primary_key=True),
    # Whole cents: money is never a float in the store.
    Column("amount_cents", BigInteger, nullable=False),
    Column("source", String(255), nullable=False),
    Column("imported_at", UtcTimestamp(), nullable=False),
    # Imported again (a corrected export): the latest amount for the seat and day wins.
)

# --- sites and teams (copied from the config on start), and closed days' tallies -------------

sites = Table(
    "sites",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("timezone", String(64), nullable=False),
    Column("updated_at", UtcTimestamp()),
)

teams = Table(
    "teams",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("leader", String(128)),
    Column("updated_at", UtcTimestamp()),
)

daily_tallies = Table(
    "daily_tallies",
    metadata,
    # One seat's local day as the daemon counted it when the day was closed
    # (ctid.store.closing): the fields of ctid.tracker.tallies.SeatTally.
    Column("seat", String(64), primary_key=True),
    Column("day", IsoDate(), primary_key=True),
    Column("calls", Integer, nullable=False),
    Column("outbound", Integer, nullable=False),
    Column("inbound", Integer, nullable=False),
    Column("transfers_in", Integer, nullable=False),
    Column("answered", Integer, nullable=False),
    Column("effective", Integer, nullable=False),
    Column("talk_seconds", Float, nullable=False),
    Column("hold_seconds", Float, nullable=False),
    Column("faxes", Integer, nullable=False),
    Column("internal_calls", Integer, nullable=False),
    Column("internal_talk_seconds", Float, nullable=False),
    Column("closed_at", UtcTimestamp(), nullable=False),
    # "daemon": from its live tallies; "rebuild": from the stored calls.
    Column("source", String(8), nullable=False),
    Index(None, "day"),
)
