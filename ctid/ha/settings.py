"""``[ha]`` configuration: an active/standby pair sharing a PostgreSQL advisory lock."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_LOCK_KEY = int.from_bytes(b"ctid", "big")
"""``0x63746964``, "ctid" in ASCII: every instance agrees on it unless told otherwise."""


def is_postgres_url(url: str | None) -> bool:
    """``postgresql://``, ``postgres://`` or ``postgresql+driver://``; not SQLite, not unset."""
    scheme = (url or "").partition("://")[0]
    return scheme.partition("+")[0] in ("postgresql", "postgres")


class HaSettings(BaseModel):
    """Active/standby (docs/operations.md): two instances share a PostgreSQL advisory lock and
    only its holder tracks; the other waits as standby and takes over when the lock frees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    """Run as one of a pair: only the instance holding the lock connects to the PBXs and
    writes. Needs ``store.url`` on PostgreSQL."""
    lock_key: int = Field(default=DEFAULT_LOCK_KEY, ge=-(2**63), le=2**63 - 1)
    """Key of the advisory lock. The two instances of a pair share it; another pair on the same
    database (other PBXs) needs a key of its own."""
    retry_seconds: float = Field(default=5.0, gt=0)
    """How often a standby tries to take the lock."""
    check_seconds: float = Field(default=5.0, gt=0)
    """How often the active checks the connection that holds the lock; when a check fails,
    ctid stops tracking and exits. A standby that takes the lock waits about twice this
    before it starts, so that the previous holder has noticed."""
