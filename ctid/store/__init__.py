"""Persistence: calls, segments, CDRs and gaps in SQLite or PostgreSQL (see docs/store.md)."""
