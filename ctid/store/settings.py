"""``[store]`` configuration: where the database lives and how the batching writer is bounded."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


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

    @property
    def spool_path(self) -> Path:
        return self.data_dir / "store-spool.jsonl"
