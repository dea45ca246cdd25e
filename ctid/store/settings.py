"""``[store]`` configuration: where the database lives and how the batching writer is bounded."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """``false`` runs the daemon without a database (a demo, a test): nothing is stored."""
    url: str | None = None
    """SQLAlchemy URL; ``None`` means SQLite at ``<data_dir>/ctid.db``.  ``postgresql://`` is
    read as ``postgresql+psycopg://`` (psycopg 3 is the driver ctid ships with)."""
    data_dir: Path = Path("var")
    """Holds the default SQLite database and the writer's spool file."""
    auto_upgrade: bool = True
    """Apply pending Alembic migrations when the daemon starts."""
    flush_ms: int = Field(default=200, gt=0)
    """The writer flushes at least this often while rows are waiting."""
    batch_rows: int = Field(default=500, gt=0)
    """At most this many rows per transaction; a full batch is flushed at once."""
    memory_rows: int = Field(default=100_000, gt=0)
    """Rows kept in memory while the database is unreachable, before spilling to disk."""
    spool_rows: int = Field(default=1_000_000, ge=0)
    """Rows the spool file may hold; rows beyond it are dropped and counted."""
    retention_days: int | None = Field(default=None, ge=1)
    """Keep this many days before today; the daemon deletes older rows once a day, as
    ``ctid purge --older-than`` does (docs/operations.md), but never the current month or ISO
    week. ``None`` keeps everything."""
    close_day_after_minutes: int = Field(default=10, ge=0, le=720)
    """A local day is closed (each seat's tallies stored in ``daily_tallies``) this long after
    its midnight, so calls that crossed midnight have ended and been counted (docs/store.md)."""
    number_key_file: Path | None = None
    """Key of the hash that follow-ups and lead lists keep instead of customer numbers
    (docs/store.md); created owner-only with random content if missing. ``None`` means
    ``<data_dir>/number.key``. Back it up with the database: a new key matches nothing stored."""
    number_region: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    """Region for reading follow-up and lead numbers without a country code; ``None`` means
    the compliance policy's ``default_region``, else ``US``."""
    number_encryption_key_file: Path | None = None
    """File holding a Fernet key (``ctid db keygen FILE`` makes one): with it, each call also
    keeps its number encrypted (``calls.remote_sealed``), which ``ctid report worklog
    --reveal`` and ``ctid violations --show-numbers`` decrypt. ``None``: no encrypted copy,
    numbers are kept only as a keyed hash and masked (docs/security.md)."""
    number_encryption_key: SecretStr | None = None
    """The Fernet key itself, best given as ``CTID_STORE__NUMBER_ENCRYPTION_KEY`` in the
    environment file; wins over ``number_encryption_key_file``."""

    @property
    def spool_path(self) -> Path:
        return self.data_dir / "store-spool.jsonl"

    @property
    def number_key_path(self) -> Path:
        return self.number_key_file or self.data_dir / "number.key"
