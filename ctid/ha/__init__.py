"""Active/standby: two ctid instances share a PostgreSQL advisory lock; only its holder tracks.

``settings`` is the ``[ha]`` section, ``session`` the lock's own database connection
(blocking), ``leader`` the async side (standby until the lock is ours, then watching it), and
``status`` how the role shows in /healthz and /metrics.  See docs/operations.md.
"""
