"""audit tables: quota adjustments as audit entries, violations keyed for idempotency

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

``quota_adjustments`` changes shape entirely (an audit entry per adjustment or revocation
instead of metric/delta pairs); no released ctid ever wrote it, so it is dropped and created
again (and the downgrade drops its entries the same way). ``violations`` gains ``fingerprint``
(unique) so a row re-sent from the spool is kept once, and an index on ``at`` for per-day
reads; its rows survive both directions. Types are spelled out, as in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _drop_adjustments() -> None:
    op.drop_index(op.f("ix_quota_adjustments_seat_day"), table_name="quota_adjustments")
    op.drop_table("quota_adjustments")


def upgrade() -> None:
    _drop_adjustments()
    op.create_table(
        "quota_adjustments",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seat", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("hours", sa.Float(), nullable=False),
        sa.Column("quota", sa.String(length=32), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("revokes", sa.Integer(), nullable=True),
        sa.Column("by", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_adjustments")),
    )
    op.create_index(op.f("ix_quota_adjustments_seat_day"), "quota_adjustments", ["seat", "day"])
    with op.batch_alter_table("violations") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
    # Rows kept across a downgrade and this upgrade again: their id stands in.
    op.execute("UPDATE violations SET fingerprint = 'id:' || CAST(id AS VARCHAR(61))")
    with op.batch_alter_table("violations") as batch:
        batch.alter_column("fingerprint", existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint(op.f("uq_violations_fingerprint"), ["fingerprint"])
        batch.create_index(op.f("ix_violations_at"), ["at"])


def downgrade() -> None:
    with op.batch_alter_table("violations") as batch:
        batch.drop_index(op.f("ix_violations_at"))
        batch.drop_constraint(op.f("uq_violations_fingerprint"), type_="unique")
        batch.drop_column("fingerprint")
    _drop_adjustments()
    op.create_table(
        "quota_adjustments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("seat", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_adjustments")),
    )
    op.create_index(op.f("ix_quota_adjustments_seat_day"), "quota_adjustments", ["seat", "day"])
