"""Customer numbers kept without the number: a keyed hash to match on, a masked form to show.

Follow-ups and lead lists come from outside ctid (the CRM, a marketing list); the store keeps
``HMAC-SHA256(key, E.164 number)`` and :func:`ctid.privacy.mask_number` of it, never the
number. The key lives in a file of its own (``[store] number_key_file``), created owner-only
with random content the first time it is needed. Calls are stored the same way
(:mod:`ctid.store.number_protect`), with the same key and region, so matching compares hashes:
a new key or region breaks matching with what was stored before.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ctid.compliance.numbers import is_phone_number, normalise
from ctid.config import Settings
from ctid.errors import ConfigError
from ctid.privacy import mask_number

KEY_BYTES = 32
MIN_KEY_CHARS = 32
"""A key file shorter than this (after stripping) is refused: too easy to guess."""
DEFAULT_REGION = "US"
"""As the compliance policy's ``default_region`` default."""


def load_key(path: Path, *, create: bool = True) -> bytes:
    """The key in ``path``, created (mode 0600, 64 random hex digits) if the file is missing
    and ``create`` (otherwise a missing file is a :class:`ConfigError`).

    Blocking: call it from a thread in async code.
    """
    if not path.exists():
        if not create:
            raise ConfigError(f"store.number_key_file {path}: no such file")
        _create_key(path)
    try:
        key = path.read_bytes().strip()
    except OSError as err:
        raise ConfigError(f"store.number_key_file {path}: cannot read ({err.strerror})") from err
    if len(key) < MIN_KEY_CHARS:
        raise ConfigError(
            f"store.number_key_file {path}: a key needs at least {MIN_KEY_CHARS} characters "
            "(delete the file to have ctid create one)"
        )
    return key


def _create_key(path: Path) -> None:
    """Write a new key beside ``path`` and link it into place: a reader never sees a partly
    written key, and of two first uses at once (the daemon, a command) one key wins."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".number-key-")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(KEY_BYTES) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    except OSError as err:
        raise ConfigError(f"store.number_key_file {path}: cannot create ({err.strerror})") from err


DIGEST_MEMO = 65_536
"""Numbers whose digest :class:`NumberHasher` remembers (~0.2 KB each)."""


@dataclass(frozen=True, slots=True)
class HashedNumber:
    digest: str
    """Hex HMAC-SHA256 of the E.164 number."""
    masked: str


class NumberHasher:
    """Normalises with the region, then hashes and masks; what import and matching share."""

    def __init__(self, key: bytes, region: str) -> None:
        self._key = key
        self.region = region
        self._digests: dict[str, str] = {}

    def is_number(self, number: str) -> bool:
        return is_phone_number(number, self.region)

    def digest(self, number: str) -> str:
        """The keyed hash of ``number`` (memoised: an import repeats numbers)."""
        found = self._digests.get(number)
        if found is None:
            found = self.digest_e164(self.e164(number))
            if len(self._digests) >= DIGEST_MEMO:
                self._digests.clear()  # bounded: the daemon's hasher lives for months
            self._digests[number] = found
        return found

    def e164(self, number: str) -> str:
        return normalise(number, self.region)

    def digest_e164(self, e164: str) -> str:
        """The keyed hash of a number already in E.164 form (not memoised)."""
        return hmac.new(self._key, e164.encode(), hashlib.sha256).hexdigest()

    def hashed(self, number: str) -> HashedNumber:
        return HashedNumber(self.digest(number), mask_number(normalise(number, self.region)))


def number_region(settings: Settings) -> str:
    """``[store] number_region``, else the compliance policy's ``default_region``, else US."""
    region = settings.store.number_region
    if region is not None:
        return region
    if settings.compliance is not None:
        from ctid.compliance.settings import load_compliance  # PolicyError: one line

        return load_compliance(settings.compliance).default_region
    return DEFAULT_REGION


def hasher_for(settings: Settings) -> NumberHasher:
    """The site's hasher (blocking: may create the key file)."""
    return NumberHasher(load_key(settings.store.number_key_path), number_region(settings))
