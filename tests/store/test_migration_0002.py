"""Revision 0002 (audit tables) up from 0001, down again, and up to head once more."""

from __future__ import annotations

import dataclasses
import datetime as dt

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from ctid.compliance import Action, Decision, Mode, Rule
from ctid.policy import Adjustment
from ctid.store.adjustments import adjustment_row
from ctid.store.engine import make_engine
from ctid.store.migrate import alembic_config, current_revision, upgrade
from ctid.store.schema import metadata
from ctid.store.upsert import write_rows
from ctid.store.violations import violation_row
from tests.store.audit_support import rows
from tests.store.support import count

ADJUSTMENT = Adjustment(
    1, "1001", dt.date(2026, 11, 23), "leave", "mgr", dt.datetime(2026, 11, 23, tzinfo=dt.UTC), "x"
)
DECISION = Decision(
    Rule.DO_NOT_CALL, Mode.ENFORCE, Action.HANGUP, "p1", 1795429860.5, "w1", "1005",
    "720*****04", "on the do-not-call list", "L1", "U1", "PJSIP/1005-00000006",
)  # fmt: skip


def columns(engine: Engine, table: str) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table)}


def indexes(engine: Engine, table: str) -> set[str]:
    return {str(index["name"]) for index in inspect(engine).get_indexes(table)}


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_0002_reshapes_the_audit_tables_and_its_downgrade_restores_0001(db_url: str) -> None:
    upgrade(db_url, "0001")
    engine = make_engine(db_url)
    try:
        assert {"metric", "delta", "created_by"} <= columns(engine, "quota_adjustments")
        assert "fingerprint" not in columns(engine, "violations")

        upgrade(db_url, "0002")
        assert current_revision(engine) == "0002"
        assert columns(engine, "quota_adjustments") == {
            "id", "seat", "day", "kind", "hours", "quota", "value", "revokes", "by", "at",
            "reason",
        }  # fmt: skip
        assert "ix_quota_adjustments_seat_day" in indexes(engine, "quota_adjustments")
        assert "ix_violations_at" in indexes(engine, "violations")
        write_rows(engine, [adjustment_row(ADJUSTMENT), violation_row(DECISION, None, "out")])
        assert (count(engine, "quota_adjustments"), count(engine, "violations")) == (1, 1)

        downgrade(engine, "0001")
        assert current_revision(engine) == "0001"
        assert {"metric", "delta", "created_by"} <= columns(engine, "quota_adjustments")
        assert "ix_quota_adjustments_seat_day" in indexes(engine, "quota_adjustments")
        assert "fingerprint" not in columns(engine, "violations")
        assert "ix_violations_seat_at" in indexes(engine, "violations")
        assert count(engine, "violations") == 1  # the violation survives; adjustments do not
        assert count(engine, "quota_adjustments") == 0

        upgrade(db_url)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        (kept,) = rows(db_url, "violations")
        assert (kept["fingerprint"], kept["seat"]) == ("id:1", "1005")
        later = dataclasses.replace(DECISION, ts=DECISION.ts + 60)
        write_rows(engine, [adjustment_row(ADJUSTMENT), violation_row(later, None, "out")])
        assert (count(engine, "quota_adjustments"), count(engine, "violations")) == (1, 2)
    finally:
        engine.dispose()
