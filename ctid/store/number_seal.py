"""Customer numbers encrypted at rest, for those allowed to read them back (Fernet).

Optional: with ``[store] number_encryption_key_file`` (or ``CTID_STORE__NUMBER_ENCRYPTION_KEY``)
each call also keeps its E.164 number as a Fernet token beside the keyed hash and the masked
form. Fernet (AES-128-CBC with HMAC-SHA256, random IV) authenticates what it decrypts, so a
token opened with another key is refused instead of yielding garbage. The key never appears
in a message, a log line or the database.
"""

from __future__ import annotations

import binascii
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from ctid.errors import ConfigError, InputError, StoreError
from ctid.store.settings import StoreSettings

KEY_SETTINGS = "[store] number_encryption_key_file or CTID_STORE__NUMBER_ENCRYPTION_KEY"


class Sealer:
    """Seals and opens numbers with one Fernet key (thread-safe: no state but the key)."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, e164: str) -> str:
        return self._fernet.encrypt(e164.encode()).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as err:
            raise StoreError(
                "a stored number does not decrypt with the configured encryption key "
                "(it was sealed with another key)"
            ) from err


def encryption_key(store: StoreSettings) -> bytes | None:
    """The configured Fernet key, checked; ``None`` when none is configured (blocking)."""
    if store.number_encryption_key is not None:
        secret = store.number_encryption_key.get_secret_value().strip().encode()
        return _checked(secret, "store.number_encryption_key")
    path = store.number_encryption_key_file
    if path is None:
        return None
    try:
        key = path.read_bytes().strip()
    except OSError as err:
        raise ConfigError(
            f"store.number_encryption_key_file {path}: cannot read ({err.strerror})"
        ) from err
    return _checked(key, f"store.number_encryption_key_file {path}")


def _checked(key: bytes, where: str) -> bytes:
    try:
        Fernet(key)
    except (ValueError, binascii.Error) as err:
        raise ConfigError(
            f"{where}: not a Fernet key (44 characters of url-safe base64; "
            "`ctid db keygen FILE` creates one)"
        ) from err
    return key


def sealer_for(store: StoreSettings) -> Sealer | None:
    key = encryption_key(store)
    return None if key is None else Sealer(key)


def required_sealer(store: StoreSettings, what: str) -> Sealer:
    """The sealer, or one clear line saying ``what`` needs the key."""
    sealer = sealer_for(store)
    if sealer is None:
        raise InputError(f"{what} needs the number encryption key ({KEY_SETTINGS})")
    return sealer


def create_key_file(path: Path) -> None:
    """A new Fernet key in ``path``, mode 0600; an existing file is never overwritten."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as err:
        raise InputError(
            f"{path}: exists; ctid never overwrites a key (numbers sealed with it would be lost)"
        ) from err
    except OSError as err:
        raise InputError(f"{path}: cannot create ({err.strerror})") from err
    with os.fdopen(fd, "wb") as handle:
        handle.write(Fernet.generate_key() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
