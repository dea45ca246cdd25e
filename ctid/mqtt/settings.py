"""``[mqtt]`` settings: the live feed's broker, topics and limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


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
    keepalive: int = Field(default=30, ge=5)
    publish_timeout: float = Field(default=10.0, gt=0)
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)
    state_interval: float = Field(default=1.0, gt=0)
    """How often seat states are compared with the last published ones."""
