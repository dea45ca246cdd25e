"""calls keep a keyed hash, a masked form and, optionally, a sealed copy of the number

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Upgrade: ``calls.remote`` (the number in clear) becomes ``remote_hash`` (HMAC-SHA256 of the
E.164 number with the follow-ups' key and region), ``remote_masked`` and ``remote_sealed``
(Fernet, only with an encryption key configured). Stored numbers are converted in batches with
the keys ``ctid.store.migrate`` hands over (``config.attributes["numbers"]``). A missing hash
key file is created when no follow-up or lead was stored yet (nothing was hashed with the old
one); otherwise it must exist — a new key would leave stored follow-ups and leads matching
nothing — and a database holding numbers is refused, before anything changes, without it.

Downgrade: ``remote`` comes back from ``remote_sealed`` (the E.164 form); refused, before
anything changes, when a call's number has no sealed copy or no encryption key is configured.

``calls`` is altered in place (ADD/DROP COLUMN, SQLite 3.35+), never copied: on SQLite, with
foreign keys on, dropping the old table would delete every call's segments.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic import op

from ctid.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from ctid.store.number_protect import NumberKeys

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH_ROWS = 1000
"""Calls read and rewritten per statement: memory stays flat whatever the table's size."""

calls = sa.table(
    "calls",
    sa.column("pbx", sa.String()),
    sa.column("linkedid", sa.String()),
    sa.column("remote", sa.String()),
    sa.column("remote_hash", sa.String()),
    sa.column("remote_masked", sa.String()),
    sa.column("remote_sealed", sa.Text()),
)


def _keys() -> NumberKeys | None:
    config = op.get_context().config
    found: NumberKeys | None = config.attributes.get("numbers") if config is not None else None
    return found


def _count(where: sa.ColumnElement[bool]) -> int:
    query = sa.select(sa.func.count()).select_from(calls).where(where)
    return int(op.get_bind().execute(query).scalar_one())


def _hashed_rows() -> int:
    """Rows hashed with the number key before this revision (follow-ups and lead lists)."""
    bind = op.get_bind()
    tables = set(sa.inspect(bind).get_table_names())
    return sum(
        int(bind.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one())
        for name in ("follow_ups", "leads")
        if name in tables
    )


def _batches(where: sa.ColumnElement[bool], *columns: str) -> Iterator[list[sa.Row[Any]]]:
    """The matching calls, ``BATCH_ROWS`` at a time, in key order (keyset pagination)."""
    bind, last = op.get_bind(), None
    selected = [calls.c.pbx, calls.c.linkedid, *(calls.c[name] for name in columns)]
    while True:
        query = sa.select(*selected).where(where)
        if last is not None:
            query = query.where(sa.tuple_(calls.c.pbx, calls.c.linkedid) > sa.tuple_(*last))
        rows = list(bind.execute(query.order_by(calls.c.pbx, calls.c.linkedid).limit(BATCH_ROWS)))
        if not rows:
            return
        yield rows
        last = (rows[-1].pbx, rows[-1].linkedid)


def _update(values: list[dict[str, Any]]) -> None:
    keyed = sa.and_(
        calls.c.pbx == sa.bindparam("key_pbx"), calls.c.linkedid == sa.bindparam("key_id")
    )
    names = [name for name in values[0] if not name.startswith("key_")]
    statement = calls.update().where(keyed).values({n: sa.bindparam(n) for n in names})
    op.get_bind().execute(statement, values)


def upgrade() -> None:
    with_number = sa.and_(calls.c.remote.is_not(None), calls.c.remote != "")
    protector = None
    if _count(with_number):
        keys = _keys()
        if keys is None:
            raise StoreError(
                "migration 0005 hashes the stored numbers and needs the number key: "
                "run `ctid db upgrade --config FILE` with the daemon's configuration"
            )
        try:
            # No follow-up or lead was ever hashed: a key made now breaks no match.
            protector = keys.protector() if not _hashed_rows() else keys.existing()
        except ConfigError as err:
            raise ConfigError(
                f"migration 0005 needs the key the stored numbers are hashed with: {err} "
                "(restore it from its backup; only if this store never held follow-ups or lead "
                "lists, `ctid db upgrade --new-number-key` creates one)"
            ) from err
    existing = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("calls")}
    if "remote_hash" not in existing:  # a run cut short on SQLite may have added them
        op.add_column("calls", sa.Column("remote_hash", sa.String(length=64), nullable=True))
        op.add_column(
            "calls",
            sa.Column("remote_masked", sa.String(length=64), nullable=False, server_default=""),
        )
        op.add_column("calls", sa.Column("remote_sealed", sa.Text(), nullable=True))
    if protector is not None:
        for rows in _batches(with_number, "remote"):
            _update(
                [
                    {"key_pbx": r.pbx, "key_id": r.linkedid, **protector.columns(r.remote)}
                    for r in rows
                ]
            )
    op.drop_column("calls", "remote")


def downgrade() -> None:
    with_number = calls.c.remote_hash.is_not(None)
    numbers = _count(with_number)
    unsealed = _count(sa.and_(with_number, calls.c.remote_sealed.is_(None)))
    if unsealed:
        raise StoreError(
            f"cannot downgrade below 0005: {unsealed} of {numbers} stored calls have no "
            "encrypted copy of their number (stored without an encryption key), so their "
            "numbers cannot be put back"
        )
    sealer = None
    if numbers:
        keys = _keys()
        sealer = keys.sealer() if keys is not None else None
        if sealer is None:
            raise StoreError(
                "cannot downgrade below 0005 without the number encryption key: the numbers "
                "are put back by decrypting them ([store] number_encryption_key_file or "
                "CTID_STORE__NUMBER_ENCRYPTION_KEY)"
            )
        first = next(_batches(with_number, "remote_sealed"))[0]
        sealer.open(first.remote_sealed)  # another key: refused before anything changes
    op.add_column(
        "calls", sa.Column("remote", sa.String(length=64), nullable=False, server_default="")
    )
    if sealer is not None:
        for rows in _batches(with_number, "remote_sealed"):
            _update(
                [
                    {"key_pbx": r.pbx, "key_id": r.linkedid, "remote": sealer.open(r.remote_sealed)}
                    for r in rows
                ]
            )
    op.drop_column("calls", "remote_sealed")
    op.drop_column("calls", "remote_masked")
    op.drop_column("calls", "remote_hash")
