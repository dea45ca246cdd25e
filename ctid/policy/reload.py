"""Hot reload of the policy file: on request (SIGHUP) and when the file changes on disk.

The file's mtime, size and inode are polled every :data:`POLL_SECONDS` — cheaper to own than a
file-watcher dependency, and fast enough for a file people edit by hand. A file that does not
load keeps the old policy in force: one ``policy_reload_failed`` line per change, and a count
in ``ctid_policy_reload_failures_total``. Each policy swapped in goes to ``on_activated``
(the daemon records it in the store's ``policy_versions``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, Counter

from ctid.errors import PolicyError
from ctid.policy.engine import QuotaEngine
from ctid.policy.loader import ConfigSeat, resolve_seats
from ctid.policy.versioning import PolicyDocument, read_policy

POLL_SECONDS = 2.0

log = structlog.get_logger("ctid")

Signature = tuple[int, int, int] | None


def _signature(path: Path) -> Signature:
    try:
        stat = os.stat(path)
    except OSError:
        return None  # gone for now (an editor's rename dance): tried when it changes again
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class PolicyReloader:
    def __init__(
        self,
        engine: QuotaEngine,
        path: Path,
        config_seats: Mapping[str, ConfigSeat],
        registry: CollectorRegistry,
        *,
        interval: float | None = None,
        active: PolicyDocument | None = None,
        on_activated: Callable[[PolicyDocument], None] | None = None,
    ) -> None:
        self.engine = engine
        self.path = path
        self.active = active
        """The document of the policy in force (``None``: not known)."""
        self._on_activated = on_activated
        self._config_seats = dict(config_seats)
        self.interval = POLL_SECONDS if interval is None else interval
        self._requested = asyncio.Event()
        self._seen = _signature(path)
        self.failures = Counter(
            "ctid_policy_reload_failures",
            "Policy reloads refused because the file did not load (the old policy stays)",
            registry=registry,
        )

    def request(self) -> None:
        """Reload at the next opportunity (the SIGHUP handler; safe from loop callbacks)."""
        self._requested.set()

    async def run(self) -> None:
        """Until cancelled: reload when requested or when the file changed."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._requested.wait(), self.interval)
            requested = self._requested.is_set()
            self._requested.clear()
            seen = await asyncio.to_thread(_signature, self.path)
            if requested or seen != self._seen:
                self._seen = seen
                await self.reload()

    async def reload(self) -> bool:
        """Load the file and swap it in; False (old policy kept) if it does not load."""
        try:
            policy, document = await asyncio.to_thread(read_policy, self.path)
            seats = resolve_seats(policy, self._config_seats)
        except PolicyError as err:
            self.failures.inc()
            log.error("policy_reload_failed", file=str(self.path), reason=str(err))
            return False
        previous = self.engine.policy.version
        self.engine.replace_policy(policy, seats)
        log.info(
            "policy_reloaded",
            file=str(self.path),
            version=policy.version,
            previous=previous,
            digest=document.digest,
        )
        old = self.active
        if old is not None and old.version == document.version and old.digest != document.digest:
            # Reports and events carry the label only: this edit is indistinguishable there.
            log.warning("policy_version_label_unchanged", file=str(self.path), version=old.version)
        self.active = document
        if self._on_activated is not None:
            self._on_activated(document)
        return True
