"""Compliance policy settings: one sub-model per rule, each with its own mode.

Loaded from a TOML file of its own (``examples/compliance.toml``) so the compliance officer can
change policy without touching the daemon's config; ``version`` is stamped on every decision.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ctid.compliance.abandon import window_label
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
    """Where ``optouts.jsonl`` lives, and the frequency journal (``frequency.jsonl``, with its
    hash key ``frequency.key``); None keeps opt-outs and attempts in memory only (tests)."""
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
    report_windows_hours: list[float] = Field(default_factory=lambda: [24.0, 720.0], max_length=8)
    """Windows of the ``ctid_abandon_rate_ratio`` gauge (24 h and 30 days); not judged."""

    @field_validator("report_windows_hours")
    @classmethod
    def _report_windows(cls, value: list[float]) -> list[float]:
        labels = [window_label(hours * 3600) for hours in value]
        if any(hours < 1 / 60 for hours in value):
            raise ValueError("a report window is at least one minute (1/60 h)")
        if len(set(labels)) != len(labels):
            raise ValueError(f"report windows repeat a label: {labels}")
        return value


class CustomerOnlySettings(_RuleSettings):
    mode: Mode = Mode.OFF
    customer_csv: list[Path] = Field(default_factory=list)
    """Customer and lead lists (CSV with a ``number`` column), loaded at start."""
    allow: list[str] = Field(default_factory=list)
    """Numbers or digit prefixes any seat may dial (internal, emergency): "911", "+1800"."""

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not entry.strip().removeprefix("+").isdigit():
                raise ValueError(
                    f"allow entry {entry!r} must be digits, a number or a prefix like '+1800'"
                )
        return value

    @model_validator(mode="after")
    def _lists(self) -> CustomerOnlySettings:
        if self.mode is not Mode.OFF and not self.customer_csv:
            raise ValueError(
                f"customer_csv is empty: with mode {self.mode.value!r} every dial would be "
                "flagged; list the customer files or set mode = 'off'"
            )
        return self


class OverlongSettings(_RuleSettings):
    mode: Mode = Mode.OFF
    warn_minutes: float = Field(default=30.0, gt=0)
    hangup_minutes: float | None = Field(default=None, gt=0)
    """Hang the seat up at this point (enforce mode; warn mode only warns); None: never."""

    @model_validator(mode="after")
    def _order(self) -> OverlongSettings:
        if self.hangup_minutes is not None and self.hangup_minutes <= self.warn_minutes:
            raise ValueError(
                f"hangup_minutes ({self.hangup_minutes:g}) must be greater than "
                f"warn_minutes ({self.warn_minutes:g})"
            )
        return self


class QuotaGamingSettings(_RuleSettings):
    mode: Mode = Mode.OFF
    effective_seconds: float = Field(default=30.0, ge=0)
    """Keep equal to the daemon's ``[site] effective_call_seconds``."""
    margin_seconds: float = Field(default=5.0, gt=0)
    """Talk in ``[effective, effective + margin)`` is "just over" the threshold."""
    burst_calls: int = Field(default=5, ge=2)
    burst_minutes: float = Field(default=30.0, gt=0)
    redial_answered: int = Field(default=3, ge=2)
    """Answered calls by one seat to one number within ``redial_hours``."""
    redial_hours: float = Field(default=24.0, gt=0)


DIAL_STATUSES = frozenset(
    {"ANSWER", "BUSY", "CANCEL", "CHANUNAVAIL", "CONGESTION", "DONTCALL", "INVALIDARGS",
     "NOANSWER", "TORTURE"}
)  # fmt: skip


class CarrierInterceptionSettings(_RuleSettings):
    mode: Mode = Mode.OFF
    dial_statuses: list[str] = Field(default_factory=lambda: ["CONGESTION", "CHANUNAVAIL"])
    """Dial statuses of an unanswered attempt that count as refused by the carrier."""
    causes: list[int] = Field(default_factory=lambda: [1, 3, 21, 27, 34, 38, 41, 42])
    """Q.850 causes that count as refused: unallocated, no route, rejected, out of order,
    no circuit, network out of order, temporary failure, switching congestion."""
    min_attempts: int = Field(default=30, ge=1)
    factor: float = Field(default=3.0, ge=1)
    floor: float = Field(default=0.09, gt=0, le=1)
    baseline_hours: int = Field(default=24, ge=1)

    @field_validator("dial_statuses")
    @classmethod
    def _statuses(cls, value: list[str]) -> list[str]:
        for status in value:
            if status not in DIAL_STATUSES:
                raise ValueError(
                    f"{status!r} is not an Asterisk DIALSTATUS ({', '.join(sorted(DIAL_STATUSES))})"
                )
        return value

    @field_validator("causes")
    @classmethod
    def _causes(cls, value: list[int]) -> list[int]:
        for cause in value:
            if not 0 <= cause <= 127:
                raise ValueError(f"cause {cause} is not a Q.850 cause (0-127)")
        return value


class EnforcementSettings(_Strict):
    action: Literal["hangup", "redirect"] = "hangup"
    hangup_cause: int = Field(default=21, ge=0, le=127)
    """21 = call rejected (Q.850)."""
    redirect_context: str = "compliance-announce"
    redirect_exten: str = "s"
    redirect_priority: int = Field(default=1, ge=1)
    warn_display: Literal["off", "sendtext", "userevent"] = "off"
    """How a ``warn`` reaches the seat: ``sendtext`` (AMI SendText to the seat's channel, a SIP
    MESSAGE most desk phones show) or ``userevent`` (for a phone-integration app)."""
    warn_event: str = "CtidComplianceWarning"


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
    customer_only: CustomerOnlySettings = Field(default_factory=CustomerOnlySettings)
    overlong: OverlongSettings = Field(default_factory=OverlongSettings)
    quota_gaming: QuotaGamingSettings = Field(default_factory=QuotaGamingSettings)
    carrier_interception: CarrierInterceptionSettings = Field(
        default_factory=CarrierInterceptionSettings
    )

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
