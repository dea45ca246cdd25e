"""Configuration: a TOML file plus ``CTID_*`` environment overrides (pydantic-settings).

Environment variables win over the file; nested keys use ``__`` (``CTID_HTTP__PORT=9481``).
A PBX secret can come from the file, from ``secret_env`` (the name of a variable holding it,
handy for systemd credentials and docker secrets), and is never logged.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ctid.errors import ConfigError
from ctid.ha.settings import HaSettings, is_postgres_url
from ctid.mqtt.settings import MqttSettings
from ctid.store.settings import StoreSettings
from ctid.tomlfile import first_problem, read_toml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSettings(_Strict):
    name: str = "site"
    timezone: str = "UTC"
    effective_call_seconds: float = Field(default=30.0, ge=0)
    wrap_up_seconds: float = Field(default=0.0, ge=0)
    """A seat shows as wrap-up this long after a customer call ends."""
    workday_start: dt.time = dt.time(9)
    workday_end: dt.time = dt.time(18)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from err
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class PbxSettings(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    host: str = "127.0.0.1"
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = "ctid"
    secret: SecretStr | None = None
    secret_env: str | None = None
    auth: Literal["md5", "plain"] = "md5"
    trunks: list[str] = Field(default_factory=list)
    ping_interval: float = Field(default=10.0, gt=0)
    action_timeout: float = Field(default=5.0, gt=0)
    cdr_csv: Path | None = None
    """The PBX's cdr_csv file (``/var/log/asterisk/cdr-csv/Master.csv``), readable by ctid:
    calls that ended during an AMI gap are backfilled from it (docs/store.md)."""

    def resolved_secret(self) -> str:
        if self.secret_env:
            value = os.environ.get(self.secret_env)
            if value is None:
                raise ConfigError(
                    f"pbx {self.name!r}: secret_env names {self.secret_env}, which is not set"
                )
            return value
        if self.secret is None:
            raise ConfigError(f"pbx {self.name!r}: set 'secret' or 'secret_env'")
        return self.secret.get_secret_value()


class SeatSettings(_Strict):
    id: str = Field(min_length=1, max_length=64)
    endpoints: list[str] = Field(default_factory=list)
    name: str = ""
    team: str = "default"
    hire_date: dt.date | None = None
    kind: Literal["human", "robot"] = "human"

    def endpoint_names(self) -> list[str]:
        return self.endpoints or [self.id]


class HttpSettings(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9480, ge=0, le=65535)
    api_token: SecretStr | None = None
    """Bearer token of the adjustments API (docs/policy.md); none: API writes are refused."""
    api_token_env: str | None = None
    """Name of an environment variable holding the token (wins over ``api_token``)."""

    def resolved_api_token(self) -> str | None:
        if self.api_token_env:
            value = os.environ.get(self.api_token_env)
            if not value:
                raise ConfigError(
                    f"http: api_token_env names {self.api_token_env}, which is not set"
                )
            return value
        return self.api_token.get_secret_value() if self.api_token is not None else None


class DemoSettings(_Strict):
    """What ``ctid run`` does when no PBX is configured: replay a bundled capture live."""

    capture: Path | None = None
    speed: float = Field(default=1.0, gt=0)
    loop: bool = True


class LogSettings(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class PolicySettings(_Strict):
    """The quota policy (docs/policy.md); no file: no quota engine."""

    file: Path | None = None
    report_dir: Path = Path("reports")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CTID_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    site: SiteSettings = Field(default_factory=SiteSettings)
    pbx: list[PbxSettings] = Field(default_factory=list)
    seats: list[SeatSettings] = Field(default_factory=list)
    http: HttpSettings = Field(default_factory=HttpSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    ha: HaSettings = Field(default_factory=HaSettings)
    compliance: Path | None = None
    """Compliance policy file (``examples/compliance.toml``); None runs no compliance guard."""
    show_numbers: bool = False
    """Print/publish customer numbers in full; by default they are masked."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (given as init values).
        return (env_settings, init_settings)

    @field_validator("ha")
    @classmethod
    def _ha_needs_postgres(cls, ha: HaSettings, info: ValidationInfo) -> HaSettings:
        # ``store`` is declared before ``ha``, so it is validated (and in info.data) by now.
        store = info.data.get("store")
        if ha.enabled and isinstance(store, StoreSettings) and not is_postgres_url(store.url):
            raise ValueError(
                'enabled needs store.url on PostgreSQL ("postgresql://..."): '
                "the lock is a PostgreSQL advisory lock"
            )
        return ha

    def seat_map(self) -> dict[str, str]:
        """Endpoint name → seat id."""
        return {ep: seat.id for seat in self.seats for ep in seat.endpoint_names()}


def secrets_in_file(data: Mapping[str, Any]) -> list[str]:
    """The keys of a parsed config file that hold a secret (never the secrets themselves)."""
    found = [
        f"pbx[{i}].secret"
        for i, pbx in enumerate(data.get("pbx") or [])
        if isinstance(pbx, Mapping) and pbx.get("secret")
    ]
    held_keys = (
        ("http", "api_token"),
        ("mqtt", "password"),
        ("mqtt", "command_token"),
        ("store", "number_encryption_key"),
    )
    for section, key in held_keys:
        table = data.get(section)
        if isinstance(table, Mapping) and table.get(key):
            found.append(f"{section}.{key}")
    store = data.get("store")
    url = store.get("url") if isinstance(store, Mapping) else None
    # user:password@host in a database URL
    if isinstance(url, str) and re.search(r"://[^/@]*:[^/@]+@", url):
        found.append("store.url (password)")
    return found


def config_warnings(path: Path | None) -> list[str]:
    """Problems worth a warning but not a refusal to start."""
    if path is None:
        return []
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if not mode & 0o004:
        return []
    held = secrets_in_file(read_toml(path, ConfigError, "config file"))
    if not held:
        return []
    return [
        f"{path} holds secrets ({', '.join(held)}) and is world-readable: chmod o-r it, or move "
        "them to environment variables (secret_env, api_token_env, CTID_MQTT__PASSWORD, ...)"
    ]


def load_settings(path: Path | None) -> Settings:
    """Read and validate the config; any problem becomes one :class:`ConfigError` line."""
    data: dict[str, Any] = {}
    source = "environment"
    if path is not None:
        source = str(path)
        data = read_toml(path, ConfigError, "config file")
    try:
        settings = Settings(**data)
    except ValidationError as err:
        raise ConfigError(first_problem(source, err)) from err
    names = [p.name for p in settings.pbx]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: pbx: names must be unique, got {names}")
    return settings
