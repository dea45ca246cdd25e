"""The TLS context for the broker connection, built once from ``[mqtt]`` settings."""

from __future__ import annotations

import ssl

from ctid.errors import ConfigError
from ctid.mqtt.settings import MqttSettings


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """``None`` without ``tls``; a verifying client context otherwise.

    Unreadable or invalid certificate files are a configuration mistake: one
    :class:`ConfigError` line at start, not a reconnect loop that can never succeed.
    """
    if not settings.tls:
        return None
    ca, cert, key = settings.ca_file, settings.cert_file, settings.key_file
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"mqtt.ca_file: {ca}: {_why(err)}") from err
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"mqtt.cert_file/key_file: {cert}, {key}: {_why(err)}") from err
    context.check_hostname = settings.tls_check_hostname
    return context


def _why(err: OSError | ssl.SSLError) -> str:
    return err.strerror or str(err) if isinstance(err, OSError) else str(err)
