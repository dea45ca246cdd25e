"""The quota policy file: its pydantic model and the checks that tie its parts together."""

from __future__ import annotations

import datetime as dt
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

QuotaName = Literal["talk_minutes", "effective_calls", "faxes", "follow_ups", "dials"]
QUOTA_NAMES: tuple[QuotaName, ...] = (
    "talk_minutes",
    "effective_calls",
    "faxes",
    "follow_ups",
    "dials",
)
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
SeatKind = Literal["human", "robot"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quotas(_Strict):
    """Daily targets; a quota left out is not measured for that tier."""

    talk_minutes: float | None = Field(default=None, ge=0)
    effective_calls: float | None = Field(default=None, ge=0)
    faxes: float | None = Field(default=None, ge=0)
    follow_ups: float | None = Field(default=None, ge=0)
    dials: float | None = Field(default=None, ge=0)

    def as_dict(self) -> dict[QuotaName, float]:
        values = {name: getattr(self, name) for name in QUOTA_NAMES}
        return {name: float(value) for name, value in values.items() if value is not None}


class Condition(_Strict):
    """Every key given must hold (they are ANDed); unknown seat data makes a key false."""

    tenure_days_lt: int | None = Field(default=None, ge=0)
    tenure_months_lt: int | None = Field(default=None, ge=0)
    prior_experience_years_lt: float | None = Field(default=None, ge=0)
    kind: SeatKind | None = None
    any: list[Condition] | None = Field(default=None, min_length=1)
    all: list[Condition] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("an empty condition would always hold; leave out 'when' instead")
        return self


class Tier(_Strict):
    name: str = Field(min_length=1)
    when: Condition | None = None
    """``None``: the tier applies to everyone who reaches it (the standard tier, last)."""
    quotas: Quotas


class Fines(_Strict):
    """Amount per missing unit of a quota (a call, a minute, a fax...)."""

    currency: str = "CNY"
    talk_minutes: float = Field(default=0.0, ge=0)
    effective_calls: float = Field(default=0.0, ge=0)
    faxes: float = Field(default=0.0, ge=0)
    follow_ups: float = Field(default=0.0, ge=0)
    dials: float = Field(default=0.0, ge=0)
    per_falsified_follow_up: float = Field(default=0.0, ge=0)
    """Amount per follow-up claimed in the CRM that the calls do not verify."""

    def per_unit(self, quota: QuotaName) -> float:
        rate: float = getattr(self, quota)
        return rate


class Scorecard(_Strict):
    """Monthly performance points: ``base``, plus signed points per event (negative deducts)."""

    base: float = 100.0
    attainment_quota: QuotaName = "effective_calls"
    """The quota whose monthly attainment earns ``per_attainment_percent``."""
    per_attainment_percent: float = 0.0
    """Points per whole 1 % of attainment above 100 % (115.7 % gives 15 of them)."""
    per_missed_workday: float = 0.0
    """Points per workday on which a measured quota fell short of the day's own target."""
    per_falsified_follow_up: float = 0.0
    per_violation: dict[str, float] = Field(default_factory=dict)
    """Points per compliance violation, by rule name (``do_not_call``, ``frequency``...)."""
    bonus_above: float = 120.0
    deduction_below: float = 80.0

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.deduction_below > self.bonus_above:
            raise ValueError("deduction_below must not be above bonus_above")
        return self


class Pay(_Strict):
    """Monthly pay estimate: named coefficients, summed (no expressions are evaluated)."""

    base: float = Field(default=0.0, ge=0)
    per_effective_call: float = Field(default=0.0, ge=0)
    per_a_class: float = Field(default=0.0, ge=0)
    """Per distinct A-class customer of the month's verified follow-ups."""
    per_b_class: float = Field(default=0.0, ge=0)
    revenue_share: float = Field(default=0.0, ge=0, le=1)
    """Share of the month's imported revenue (0.01 is 1 %)."""


class Recognition(_Strict):
    """The monthly report's leaderboards, per team and for the centre."""

    top: int = Field(default=3, ge=1, le=100)
    attainment_quota: QuotaName = "effective_calls"


_CALL_QUOTAS: tuple[QuotaName, ...] = ("effective_calls", "dials")
"""What "field visits reduce the call quota" reduces unless ``field_visit_reduces`` says else."""
_DIALING_WINDOWS = [(dt.time(9, 20), dt.time(11, 45)), (dt.time(13, 30), dt.time(17, 30))]


def _minutes(t: dt.time) -> int:
    return t.hour * 60 + t.minute


class Site(_Strict):
    timezone: str = "Asia/Shanghai"
    workdays: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    holidays: list[dt.date] = Field(default_factory=list)
    extra_workdays: list[dt.date] = Field(default_factory=list)
    """Weekend days worked instead of a holiday (调休)."""
    shift_start: dt.time = dt.time(9, 0)
    shift_end: dt.time = dt.time(18, 0)
    dialing_windows: list[tuple[dt.time, dt.time]] = Field(
        default_factory=lambda: list(_DIALING_WINDOWS),
        min_length=1,
    )
    end_of_day: dt.time = dt.time(18, 0)
    checkpoints: list[dt.time] = Field(
        default_factory=lambda: [dt.time(11, 45), dt.time(15, 30), dt.time(17, 0)]
    )
    """Times of the ``behind_pace`` check."""
    report_before_eod_minutes: int = Field(default=10, ge=0, le=600)
    grace_minutes: int = Field(default=30, ge=0, le=600)
    makeup_weekday: Weekday = "sunday"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from err
        return value

    @model_validator(mode="after")
    def _coherent_day(self) -> Self:
        if self.shift_start >= self.shift_end:
            raise ValueError("shift_start must be before shift_end")
        previous_end = self.shift_start
        for start, end in self.dialing_windows:
            if not previous_end <= start < end <= self.end_of_day:
                raise ValueError(
                    f"dialing window {start:%H:%M}-{end:%H:%M} must be ordered, not overlap, "
                    "and lie between shift_start and end_of_day"
                )
            previous_end = end
        # Grace must end the same local day: a day's counters stop at midnight.
        if _minutes(self.end_of_day) + self.grace_minutes >= 24 * 60:
            raise ValueError("end_of_day + grace_minutes must stay before midnight")
        if self.report_before_eod_minutes > _minutes(self.end_of_day):
            raise ValueError("report_before_eod_minutes reaches back before midnight")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def shift_hours(self) -> float:
        return (_minutes(self.shift_end) - _minutes(self.shift_start)) / 60


class Team(_Strict):
    leader: str = ""
    site: str | None = None
    """Defaults to the only site, when there is one."""
    targets: Quotas = Field(default_factory=Quotas)
    """Team-level daily targets for the roll-up; a quota left out is the sum of seat targets."""


class PolicySeat(_Strict):
    """Seat facts for tiers; keys left out come from the main config's ``[[seats]]``."""

    id: str = Field(min_length=1, max_length=64)
    name: str | None = None
    team: str | None = None
    hire_date: dt.date | None = None
    prior_experience_years: float | None = Field(default=None, ge=0)
    kind: SeatKind | None = None


class Policy(_Strict):
    version: str = Field(min_length=1)
    effective_call_seconds: float = Field(default=30.0, ge=0)
    at_risk_below: float = Field(default=0.8, gt=0, le=1)
    """A seat behind pace whose forecast is below this share of the target is ``at_risk``."""
    field_visit_reduces: list[QuotaName] = Field(default_factory=lambda: list(_CALL_QUOTAS))
    sites: dict[str, Site] = Field(min_length=1)
    teams: dict[str, Team] = Field(default_factory=dict)
    seats: list[PolicySeat] = Field(default_factory=list)
    tiers: list[Tier] = Field(min_length=1)
    fines: Fines = Field(default_factory=Fines)
    scorecard: Scorecard = Field(default_factory=Scorecard)
    pay: Pay | None = None
    """``None``: no pay estimate in the scorecard."""
    recognition: Recognition = Field(default_factory=Recognition)

    @model_validator(mode="after")
    def _references(self) -> Self:
        if self.tiers[-1].when is not None:
            raise ValueError("the last tier must have no 'when': it is the standard tier")
        names = [tier.name for tier in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        ids = [seat.id for seat in self.seats]
        if len(set(ids)) != len(ids):
            raise ValueError("seat ids must be unique")
        for name, team in self.teams.items():
            if team.site is not None and team.site not in self.sites:
                raise ValueError(f"team {name!r}: unknown site {team.site!r}")
            if team.site is None and len(self.sites) > 1:
                raise ValueError(f"team {name!r}: several sites, say which one with 'site'")
        for seat in self.seats:
            if seat.team is not None and seat.team not in self.teams:
                raise ValueError(f"seat {seat.id!r}: unknown team {seat.team!r}")
        return self

    def site_of_team(self, team: str) -> str:
        configured = self.teams.get(team)
        if configured is not None and configured.site is not None:
            return configured.site
        return next(iter(self.sites))
