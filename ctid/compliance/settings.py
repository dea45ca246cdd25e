"""Compliance policy settings: one sub-model per rule, each with its own mode.

Loaded from a TOML file of its own (``examples/compliance.toml``) so the compliance officer can
change policy without touching the daemon's config; ``version`` is stamped on every decision.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ctid.compliance.decision import Mode
from ctid.errors import PolicyError
from ctid.tomlfile import first_problem, read_toml

Window = tuple[dt.time, dt.time]


def parse_window(text: str) -> Window:
    """``"09:20-11:45"`` → (09:20, 11:45); the end is exclusive."""
    start, sep, end = text.partition("-")
    try:
        if not sep:
            raise ValueError
        window = dt.time.fromisoformat(start.strip()), dt.time.fromisoformat(end.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a window like '09:20-11:45'") from None
    if window[0] >= window[1]:
        raise ValueError(f"window {text!r} ends before it starts")
    return window


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from err
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RuleSettings(_Strict):
    mode: Mode = Mode.OBSERVE


class CallingHoursSettings(_RuleSettings):
    site_windows: list[str] = Field(default_factory=lambda: ["09:00-20:00"])
    """Site-local dialing windows; a dial outside all of them is a violation."""
    callee_window: str = "08:00-21:00"
    """Allowed time of day in the callee's local time zone."""
    prefix_zones: dict[str, str] = Field(default_factory=dict)
    """Dialled-digit prefix → IANA zone; the longest match wins over ``phonenumbers``."""

    @field_validator("site_windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_window(item)
        return value

    @field_validator("callee_window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_window(value)
        return value

    @field_validator("prefix_zones")
    @classmethod
    def _zones(cls, value: dict[str, str]) -> dict[str, str]:
        for prefix, zone in value.items():
            if not prefix.lstrip("+").isdigit():
                raise ValueError(f"prefix {prefix!r} must be digits")
            _check_zone(zone)
        return value


class DoNotCallSettings(_RuleSettings):
    data_dir: Path | None = None
    """Where ``optouts.jsonl`` lives; None keeps opt-outs in memory only (tests)."""
    import_csv: list[Path] = Field(default_factory=list)
    """CSV files (a ``number`` column) loaded at start."""
    optout_event: str = "CtidOptOut"


class Cap(_Strict):
    per_day: int | None = Field(default=None, ge=1)
    per_week: int | None = Field(default=None, ge=1)


class FrequencySettings(_RuleSettings):
    site: Cap = Field(default_factory=lambda: Cap(per_day=3, per_week=7))
    """Attempts per number, whichever seat dials."""
    seat: Cap = Field(default_factory=Cap)
    """Attempts per number by one seat."""


class DisclosureSettings(_RuleSettings):
    within_seconds: float = Field(default=15.0, gt=0)
    event: str = "CtidDisclosure"


class AbandonRateSettings(_RuleSettings):
    ceiling: float = Field(default=0.03, ge=0, le=1)
    window_hours: float = Field(default=24.0, gt=0)
    min_calls: int = Field(default=20, ge=1)
    """Below this many offered calls the rate is not judged: 1 of 2 is not a 50 % floor."""
    default_queue: str = "sales"


class EnforcementSettings(_Strict):
    action: Literal["hangup", "redirect"] = "hangup"
    hangup_cause: int = Field(default=21, ge=0, le=127)
    """21 = call rejected (Q.850)."""
    redirect_context: str = "compliance-announce"
    redirect_exten: str = "s"
    redirect_priority: int = Field(default=1, ge=1)


class ComplianceSettings(_Strict):
    version: str = Field(min_length=1)
    default_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    site_timezone: str = "UTC"
    enforcement: EnforcementSettings = Field(default_factory=EnforcementSettings)
    calling_hours: CallingHoursSettings = Field(default_factory=CallingHoursSettings)
    do_not_call: DoNotCallSettings = Field(default_factory=DoNotCallSettings)
    frequency: FrequencySettings = Field(default_factory=FrequencySettings)
    disclosure: DisclosureSettings = Field(default_factory=DisclosureSettings)
    abandon_rate: AbandonRateSettings = Field(default_factory=AbandonRateSettings)

    @field_validator("site_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)


def load_compliance(path: Path) -> ComplianceSettings:
    """Read and validate a policy file; any problem becomes one :class:`PolicyError` line."""
    data = read_toml(path, PolicyError, "policy file")
    try:
        return ComplianceSettings(**data)
    except ValidationError as err:
        raise PolicyError(first_problem(str(path), err)) from err
