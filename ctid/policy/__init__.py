"""Quota policy: tiers, calendar, adjustments, the quota engine and its end-of-day report."""

from ctid.policy.adjustments import Adjustment, Adjustments, DayAdjustment
from ctid.policy.engine import QuotaEngine, QuotaEvent, SeatEvaluation
from ctid.policy.loader import check_policy, load_policy, resolve_seats
from ctid.policy.progress import QuotaProgress, Status
from ctid.policy.report import (
    EodReport,
    build_report,
    report_today,
    write_csv,
    write_json,
    write_report_files,
)
from ctid.policy.scheduler import Clock, QuotaScheduler, SystemClock
from ctid.policy.schema import Policy, QuotaName
from ctid.policy.tiers import SeatProfile, choose_tier

__all__ = [
    "Adjustment",
    "Adjustments",
    "Clock",
    "DayAdjustment",
    "EodReport",
    "Policy",
    "QuotaEngine",
    "QuotaEvent",
    "QuotaName",
    "QuotaProgress",
    "QuotaScheduler",
    "SeatEvaluation",
    "SeatProfile",
    "Status",
    "SystemClock",
    "build_report",
    "check_policy",
    "choose_tier",
    "load_policy",
    "report_today",
    "resolve_seats",
    "write_csv",
    "write_json",
    "write_report_files",
]
