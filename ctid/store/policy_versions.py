"""Activated quota policies in the store: one row per distinct text, the first activation kept.

Written through the writer at start and after each successful reload; the table's digest is
its natural key and the row is insert-if-absent, so activating the same text again (a reload
of an unchanged file, a restart) adds nothing.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from ctid.policy.versioning import PolicyDocument
from ctid.store.rows import StoreRow
from ctid.store.schema import policy_versions


def policy_version_row(document: PolicyDocument, activated_at: float) -> StoreRow:
    values = {
        "name": document.version,
        "digest": document.digest,
        "activated_at": activated_at,
        "document": document.text,
    }
    return StoreRow("policy_versions", values)


def load_policy_versions(connection: Connection) -> list[PolicyDocument]:
    """Every stored policy text, in order of first activation."""
    query = select(policy_versions).order_by(policy_versions.c.activated_at, policy_versions.c.id)
    return [PolicyDocument(r.name, r.digest, r.document) for r in connection.execute(query)]
