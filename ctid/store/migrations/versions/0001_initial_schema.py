"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Types are spelled out here rather than imported from ``ctid.store.schema``: a migration must
keep creating what it created on the day it was written.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, length: int, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def _float(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Float(), nullable=nullable)


def _directory_tables() -> None:
    op.create_table(
        "pbxs",
        _str("name", 64),
        _str("host", 255, nullable=True),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pbxs")),
    )
    op.create_table(
        "seats",
        _str("seat", 64),
        _str("name", 128),
        _str("team", 64),
        _str("kind", 16),
        sa.Column("hire_date", sa.Date(), nullable=True),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("seat", name=op.f("pk_seats")),
    )


def _call_tables() -> None:
    op.create_table(
        "calls",
        _str("pbx", 64),
        _str("linkedid", 64),
        _str("direction", 8),
        _str("kind", 8),
        _str("seat", 64, nullable=True),
        _str("placed_by", 64, nullable=True),
        _str("remote", 64),
        _ts("started_at", nullable=False),
        _ts("answered_at"),
        _ts("ended_at"),
        _str("outcome", 16, nullable=True),
        sa.Column("cause", sa.Integer(), nullable=True),
        _float("ring_seconds", nullable=True),
        _float("talk_seconds"),
        _float("hold_seconds"),
        sa.Column("interrupted", sa.Boolean(), nullable=False),
        sa.Column("backfilled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("pbx", "linkedid", name=op.f("pk_calls")),
    )
    op.create_index(op.f("ix_calls_started_at"), "calls", ["started_at"])
    op.create_index(op.f("ix_calls_seat_started_at"), "calls", ["seat", "started_at"])
    op.create_table(
        "call_segments",
        _str("pbx", 64),
        _str("linkedid", 64),
        _str("seat_channel", 128),
        _str("ext_channel", 128),
        _str("seat", 64),
        _float("talk_seconds"),
        _float("hold_seconds"),
        _ts("started_at"),
        _ts("ended_at"),
        sa.Column("talk_intervals", sa.JSON(), nullable=False),
        sa.Column("hold_intervals", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pbx", "linkedid"],
            ["calls.pbx", "calls.linkedid"],
            name=op.f("fk_call_segments_pbx_linkedid_calls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "pbx", "linkedid", "seat_channel", "ext_channel", name=op.f("pk_call_segments")
        ),
    )
    op.create_index(
        op.f("ix_call_segments_seat_started_at"), "call_segments", ["seat", "started_at"]
    )
    op.create_table(
        "internal_talk",
        _str("pbx", 64),
        _str("seat", 64),
        _ts("started_at", nullable=False),
        _ts("ended_at", nullable=False),
        _float("seconds"),
        sa.PrimaryKeyConstraint("pbx", "seat", "started_at", name=op.f("pk_internal_talk")),
    )
    op.create_table(
        "internal_calls",
        _str("pbx", 64),
        _str("seat", 64),
        _ts("placed_at", nullable=False),
        _str("target_seat", 64),
        sa.PrimaryKeyConstraint("pbx", "seat", "placed_at", name=op.f("pk_internal_calls")),
    )


def _pbx_record_tables() -> None:
    op.create_table(
        "cdrs",
        _str("pbx", 64),
        _str("uniqueid", 64),
        _str("seq", 32),
        _str("linkedid", 64),
        _str("channel", 128),
        _str("dest_channel", 128),
        _str("disposition", 16),
        sa.Column("billsec", sa.Integer(), nullable=False),
        sa.Column("duration", sa.Integer(), nullable=False),
        _ts("started_at"),
        _ts("answered_at"),
        _ts("ended_at"),
        _ts("posted_at", nullable=False),
        sa.PrimaryKeyConstraint("pbx", "uniqueid", "seq", name=op.f("pk_cdrs")),
    )
    op.create_index(op.f("ix_cdrs_pbx_linkedid"), "cdrs", ["pbx", "linkedid"])
    op.create_index(op.f("ix_cdrs_posted_at"), "cdrs", ["posted_at"])
    op.create_table(
        "gaps",
        _str("pbx", 64),
        _ts("started_at", nullable=False),
        _ts("ended_at"),
        sa.PrimaryKeyConstraint("pbx", "started_at", name=op.f("pk_gaps")),
    )


def _later_issue_tables() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _str("name", 128),
        _str("digest", 64),
        _ts("activated_at", nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_versions")),
        sa.UniqueConstraint("digest", name=op.f("uq_policy_versions_digest")),
    )
    op.create_table(
        "violations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _str("pbx", 64, nullable=True),
        _str("linkedid", 64, nullable=True),
        _str("seat", 64, nullable=True),
        _str("rule", 64),
        _str("severity", 16),
        _ts("at", nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_violations")),
    )
    op.create_index(op.f("ix_violations_seat_at"), "violations", ["seat", "at"])
    op.create_table(
        "quota_adjustments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _str("seat", 64),
        sa.Column("day", sa.Date(), nullable=False),
        _str("metric", 32),
        _float("delta"),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("created_at", nullable=False),
        _str("created_by", 64),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_adjustments")),
    )
    op.create_index(op.f("ix_quota_adjustments_seat_day"), "quota_adjustments", ["seat", "day"])


def upgrade() -> None:
    _directory_tables()
    _call_tables()
    _pbx_record_tables()
    _later_issue_tables()


def downgrade() -> None:
    for table in (
        "quota_adjustments",
        "violations",
        "policy_versions",
        "gaps",
        "cdrs",
        "internal_calls",
        "internal_talk",
        "call_segments",
        "calls",
        "seats",
        "pbxs",
    ):
        op.drop_table(table)
