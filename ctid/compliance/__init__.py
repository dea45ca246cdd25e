"""Compliance guard: rules on every outbound call, in observe / warn / enforce mode."""

from ctid.compliance.channels import ChannelLookup, ChannelRef, tracker_lookup
from ctid.compliance.decision import Action, Decision, Mode, Rule
from ctid.compliance.enforcer import ActionOutcome, ActionSender, Enforcer
from ctid.compliance.guard import ComplianceGuard
from ctid.compliance.optout import OptOutJournal, OptOutList
from ctid.compliance.service import ComplianceService
from ctid.compliance.settings import ComplianceSettings, load_compliance

__all__ = [
    "Action",
    "ActionOutcome",
    "ActionSender",
    "ChannelLookup",
    "ChannelRef",
    "ComplianceGuard",
    "ComplianceService",
    "ComplianceSettings",
    "Decision",
    "Enforcer",
    "Mode",
    "OptOutJournal",
    "OptOutList",
    "Rule",
    "load_compliance",
    "tracker_lookup",
]
