"""follow-ups and lead lists: CRM claims and marketing lists, numbers kept hashed and masked

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Three new tables; nothing else changes, so the downgrade drops them (and what they hold).
Types are spelled out, as in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _hash_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("number_hash", sa.String(length=64), nullable=False),
        sa.Column("number_masked", sa.String(length=64), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("seat", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        *_hash_columns(),
        sa.Column("class", sa.String(length=1), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_ups")),
        sa.UniqueConstraint(
            "seat", "at", "number_hash", name=op.f("uq_follow_ups_seat_at_number_hash")
        ),
    )
    op.create_index(op.f("ix_follow_ups_day_seat"), "follow_ups", ["day", "seat"])
    op.create_table(
        "lead_lists",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_lists")),
        sa.UniqueConstraint("name", name=op.f("uq_lead_lists_name")),
    )
    op.create_table(
        "leads",
        sa.Column("list_id", sa.Integer(), autoincrement=False, nullable=False),
        *_hash_columns(),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["lead_lists.id"],
            name=op.f("fk_leads_list_id_lead_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("list_id", "number_hash", name=op.f("pk_leads")),
    )


def downgrade() -> None:
    op.drop_table("leads")
    op.drop_table("lead_lists")
    op.drop_index(op.f("ix_follow_ups_day_seat"), table_name="follow_ups")
    op.drop_table("follow_ups")
