"""``[mqtt]`` settings: the live feed's broker, topics and limits."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


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
    """How often seat states are compared with the last published ones."""

    @model_validator(mode="after")
    def _tls_files_need_tls(self) -> MqttSettings:
        uses_files = any(f is not None for f in (self.ca_file, self.cert_file, self.key_file))
        if uses_files and not self.tls:
            raise ValueError("ca_file, cert_file and key_file need tls = true")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self
