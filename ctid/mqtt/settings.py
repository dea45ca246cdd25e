"""``[mqtt]`` settings: the live feed's broker, topics and limits, and the command topics."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ctid.errors import ConfigError


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    topic_prefix: str = Field(default="ctid", pattern=r"^[^#+\s]+$")
    """First topic level; MQTT wildcards (``#``, ``+``) would make the topics unsubscribable."""
    qos: int = Field(default=1, ge=0, le=2)
    queue_size: int = Field(default=10_000, ge=1)
    """Messages waiting for the broker; beyond it new messages are dropped and counted."""
    client_id: str | None = None
    """MQTT client identifier; ``None`` lets the client library pick a random one."""
    username: str | None = None
    password: SecretStr | None = None
    """Prefer ``CTID_MQTT__PASSWORD`` in the environment over writing it in the file."""
    tls: bool = False
    """Connect with TLS (the broker's TLS listener, usually port 8883)."""
    ca_file: Path | None = None
    """CA certificate(s) to verify the broker with; ``None``: the system's trusted CAs."""
    cert_file: Path | None = None
    """Client certificate (PEM) for brokers that require one; needs ``key_file``."""
    key_file: Path | None = None
    tls_check_hostname: bool = True
    """Check the broker's certificate names ``host``; turn off only for an IP-only test bed."""
    keepalive: int = Field(default=30, ge=5)
    publish_timeout: float = Field(default=10.0, gt=0)
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)
    state_interval: float = Field(default=1.0, gt=0)
    """How often seat states and today's figures are compared with the last published ones."""
    commands: bool = False
    """Take commands (``optout``, ``adjust``) on ``<prefix>/<site>/command/<name>``
    (docs/mqtt.md); needs ``command_token`` or ``command_token_env``."""
    command_token: SecretStr | None = None
    """Shared token every command must carry in its ``token`` field."""
    command_token_env: str | None = None
    """Name of an environment variable holding the command token (wins over ``command_token``)."""

    @model_validator(mode="after")
    def _tls_files_need_tls(self) -> MqttSettings:
        uses_files = any(f is not None for f in (self.ca_file, self.cert_file, self.key_file))
        if uses_files and not self.tls:
            raise ValueError("ca_file, cert_file and key_file need tls = true")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.commands and self.command_token is None and not self.command_token_env:
            # Commands change quotas and the do-not-call list: never open to any publisher.
            raise ValueError("commands need command_token or command_token_env")
        return self

    def resolved_command_token(self) -> str | None:
        """The command token; a missing ``command_token_env`` variable is a config error."""
        if self.command_token_env:
            value = os.environ.get(self.command_token_env)
            if not value:
                raise ConfigError(
                    f"mqtt: command_token_env names {self.command_token_env}, which is not set"
                )
            return value
        return self.command_token.get_secret_value() if self.command_token is not None else None
