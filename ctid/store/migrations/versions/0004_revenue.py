"""revenue: amounts per seat and day (or month) imported for the pay estimate

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

One new table; the downgrade drops it with what it holds. Types are spelled out, as in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "revenue",
        sa.Column("seat", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("span", sa.String(length=5), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seat", "day", "span", name=op.f("pk_revenue")),
    )


def downgrade() -> None:
    op.drop_table("revenue")
