"""What the store keeps of a call's number: never the number itself.

* ``remote_hash``: ``HMAC-SHA256(key, E.164)`` with the follow-ups' and leads' key and region
  (:mod:`ctid.store.number_key`), so claims and lead lists match calls by hash;
* ``remote_masked``: :func:`ctid.privacy.mask_number` of the number as the PBX gave it, what
  reports and the work log show;
* ``remote_sealed``: only with an encryption key configured, the E.164 number encrypted
  (:mod:`ctid.store.number_seal`), for those allowed to read it back.

Rows hold ``remote`` in clear only while they wait to be written (memory, spool file);
:meth:`NumberProtector.call_values` turns it into the three columns as a batch is written, in
the writer's worker thread, never on the event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from ctid.config import Settings
from ctid.privacy import mask_number
from ctid.store.number_key import DEFAULT_REGION, NumberHasher, load_key, number_region
from ctid.store.number_seal import Sealer, sealer_for
from ctid.store.settings import StoreSettings

NUMBER_COLUMNS = ("remote_hash", "remote_masked", "remote_sealed")


class NumberProtector:
    """Hash, mask and (optionally) seal one number; thread-safe, keeps nothing it saw."""

    def __init__(self, hasher: NumberHasher, sealer: Sealer | None) -> None:
        self.hasher = hasher
        self.sealer = sealer

    def columns(self, remote: str) -> dict[str, str | None]:
        """The stored columns of ``remote``; a call without a number gets no hash."""
        if not remote:
            return {"remote_hash": None, "remote_masked": "", "remote_sealed": None}
        e164 = self.hasher.e164(remote)
        # An odd dial string with no digits normalises to nothing: seal it as it came.
        sealed = self.sealer.seal(e164 or remote) if self.sealer is not None else None
        return {
            "remote_hash": self.hasher.digest_e164(e164),
            "remote_masked": mask_number(remote),
            "remote_sealed": sealed,
        }

    def call_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A ``calls`` row with ``remote`` replaced by its columns.

        A new dict: the queued row stays as it was, so a failed batch is retried unchanged.
        """
        out = {key: value for key, value in values.items() if key != "remote"}
        out.update(self.columns(values["remote"] or ""))
        return out


Loader = Callable[[bool], NumberProtector]
"""``create`` → the protector; ``create`` says whether a missing hash key may be made."""


class NumberKeys:
    """Where the writer, the backfill and the migration get the protector: key files are read
    once, in the worker thread that first needs them (blocking I/O stays off the loop)."""

    def __init__(self, load: Loader, seal_key: Callable[[], Sealer | None]) -> None:
        self._load = load
        self._seal_key = seal_key
        self._loaded: NumberProtector | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> NumberKeys:
        return cls(
            lambda create: protector_for(settings, create=create),
            lambda: sealer_for(settings.store),
        )

    @classmethod
    def from_store(cls, store: StoreSettings) -> NumberKeys:
        """Without the whole config: ``[store] number_region``, else ``US`` (the daemon passes
        :meth:`from_settings`, which also reads the compliance policy's region)."""
        region = store.number_region or DEFAULT_REGION
        return cls(lambda create: _protector(store, region, create), lambda: sealer_for(store))

    @classmethod
    def fixed(cls, protector: NumberProtector) -> NumberKeys:
        return cls(lambda _create: protector, lambda: protector.sealer)

    def protector(self) -> NumberProtector:
        """The protector for new rows; the hash key is created if missing (first use)."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load(True)
            return self._loaded

    def existing(self) -> NumberProtector:
        """For converting stored numbers: a missing hash key is an error, never made anew
        (a new key would silently stop stored follow-ups and leads from matching)."""
        return self._load(False)

    def sealer(self) -> Sealer | None:
        """Only the encryption key (to read numbers back): the hash key is not needed."""
        return self._seal_key()


def protector_for(settings: Settings, *, create: bool = True) -> NumberProtector:
    """The site's protector (blocking: reads, and with ``create`` may make, key files)."""
    return _protector(settings.store, number_region(settings), create)


def _protector(store: StoreSettings, region: str, create: bool) -> NumberProtector:
    hasher = NumberHasher(load_key(store.number_key_path, create=create), region)
    return NumberProtector(hasher, sealer_for(store))
