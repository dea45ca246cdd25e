"""sites, teams and the tallies of closed days

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09

Upgrade: ``sites`` and ``teams`` (copied from the config on start) and ``daily_tallies`` (one
row per seat and closed local day). Downgrade: drops the three tables with what they hold
(sites and teams come back from the config; closed days can be rebuilt from the calls).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = ("calls", "outbound", "inbound", "transfers_in", "answered", "effective")


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sites")),
    )
    op.create_table(
        "teams",
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("leader", sa.String(length=128), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("site", "name", name=op.f("pk_teams")),
    )
    op.create_table(
        "daily_tallies",
        sa.Column("seat", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS),
        sa.Column("talk_seconds", sa.Float(), nullable=False),
        sa.Column("hold_seconds", sa.Float(), nullable=False),
        sa.Column("faxes", sa.Integer(), nullable=False),
        sa.Column("internal_calls", sa.Integer(), nullable=False),
        sa.Column("internal_talk_seconds", sa.Float(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("seat", "day", name=op.f("pk_daily_tallies")),
    )
    op.create_index(op.f("ix_daily_tallies_day"), "daily_tallies", ["day"])


def downgrade() -> None:
    op.drop_index(op.f("ix_daily_tallies_day"), table_name="daily_tallies")
    op.drop_table("daily_tallies")
    op.drop_table("teams")
    op.drop_table("sites")
