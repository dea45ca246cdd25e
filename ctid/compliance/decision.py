"""What the compliance guard decides: one :class:`Decision` per rule that a call breaks."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Rule(enum.StrEnum):
    CALLING_HOURS = "calling_hours"
    DO_NOT_CALL = "do_not_call"
    FREQUENCY = "frequency"
    DISCLOSURE = "disclosure"
    ABANDON_RATE = "abandon_rate"
    CUSTOMER_ONLY = "customer_only"
    OVERLONG = "overlong"
    QUOTA_GAMING = "quota_gaming"
    CARRIER_INTERCEPTION = "carrier_interception"


class Mode(enum.StrEnum):
    OFF = "off"
    OBSERVE = "observe"
    WARN = "warn"
    ENFORCE = "enforce"


class Action(enum.StrEnum):
    NONE = "none"
    WARN = "warn"
    HANGUP = "hangup"
    REDIRECT = "redirect"


@dataclass(frozen=True, slots=True)
class Decision:
    """A rule violation and what to do about it.

    ``number`` is already masked: a decision is logged and published, never the full number.
    ``channel`` is the seat channel's name (what ``Hangup``/``Redirect`` need); it is None when
    there is nothing to act on (an abandon-rate breach, or a channel the tracker lost).
    """

    rule: Rule
    mode: Mode
    action: Action
    pbx: str
    ts: float
    policy_version: str
    seat: str | None
    number: str
    reason: str
    linkedid: str | None = None
    uniqueid: str | None = None
    channel: str | None = None

    @property
    def acts(self) -> bool:
        """True when the enforcer must send an AMI action."""
        return self.action in (Action.HANGUP, Action.REDIRECT)
