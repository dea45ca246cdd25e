"""The quota engine: per-seat daily counters against tiered, adjusted targets, and checkpoints.

Pure: no clock reads and no I/O. Updates cost O(1) per counter touched (targets are cached per
seat-day and recomputed only when adjustments or make-up deficits change); checkpoint events
are computed from the state and the time given. ``advance(now)`` is the one stateful step the
scheduler calls: it returns the events due since the previous call and records the make-up
deficits they create.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from ctid.policy.adjustments import Adjustments, adjusted_targets
from ctid.policy.progress import (
    QuotaProgress,
    Status,
    fine_for,
    pace_status,
    quota_progress,
    reached,
    worst_status,
)
from ctid.policy.schema import Policy, QuotaName, Site
from ctid.policy.tiers import SeatProfile, choose_tier
from ctid.policy.workday import (
    Checkpoint,
    checkpoints_between,
    dialing_progress,
    end_of_day,
    is_workday,
    local_day,
    makeup_day_after,
    next_checkpoint,
)
from ctid.tracker.model import Call, CallEnded, Effect
from ctid.tracker.tallies import split_by_local_day

EventKind = Literal["quota_met", "behind_pace", "report_due", "eod_shortfall", "grace_shortfall"]
MAKEUP_TIER = "make-up"

KEEP_DAYS = dt.timedelta(days=14)
"""Days before the engine's clock it keeps counters for: enough for grace and make-up days
(and a clock step back), bounded for a daemon that runs for months."""


@dataclass(frozen=True, slots=True)
class QuotaEvent:
    kind: EventKind
    at: dt.datetime
    day: dt.date
    seat: str | None = None
    site: str | None = None
    quota: QuotaName | None = None
    shortfall: Mapping[QuotaName, float] = field(default_factory=dict)
    makeup_day: dt.date | None = None
    policy_version: str = ""
    """The ``version`` of the policy that judged it."""


@dataclass(frozen=True, slots=True)
class SeatEvaluation:
    seat: SeatProfile
    day: dt.date
    tier: str
    makeup: bool
    """Targets are (or include) deficits carried to this make-up day."""
    quotas: dict[QuotaName, QuotaProgress]
    status: Status
    fine: float

    @property
    def shortfall(self) -> dict[QuotaName, float]:
        return {q: p.missing for q, p in self.quotas.items() if p.missing > 0}


QuotaPace = tuple[QuotaName, float, float, Status]
"""A quota's (name, target, actual, status) for one seat at one moment."""
_NO_COUNTS: Mapping[QuotaName, float] = {}


@dataclass(frozen=True, slots=True)
class _DayTargets:
    tier: str
    targets: dict[QuotaName, float]
    makeup: bool


class QuotaEngine:
    def __init__(
        self,
        policy: Policy,
        seats: Mapping[str, SeatProfile],
        adjustments: Adjustments | None = None,
        *,
        start: dt.datetime,
    ) -> None:
        """``start``: checkpoints up to this time are considered handled (daemon start)."""
        self.policy = policy
        self.adjustments = adjustments or Adjustments()
        self._seats = dict(seats)
        self._cursor = start
        self._counters: dict[tuple[str, dt.date], dict[QuotaName, float]] = {}
        self._deficits: dict[tuple[str, dt.date], dict[QuotaName, float]] = {}
        self._deficit_version = 0
        self._targets: dict[tuple[str, dt.date], _DayTargets] = {}
        self._targets_version = (-1, -1)
        self._forgotten_before = start.date() - KEEP_DAYS

    # --- seats -------------------------------------------------------------------------

    def profile(self, seat: str) -> SeatProfile:
        """A seat the policy does not know is a human of team "default" (standard tier)."""
        known = self._seats.get(seat)
        if known is None:
            site = self.policy.site_of_team("default")
            known = self._seats[seat] = SeatProfile(seat, seat, "default", site)
        return known

    def seat_ids(self) -> list[str]:
        return list(self._seats)

    @property
    def seats(self) -> Mapping[str, SeatProfile]:
        """Every seat known, read-only; the same mapping until a policy reload replaces it."""
        return self._seats

    def replace_policy(self, policy: Policy, seats: Mapping[str, SeatProfile]) -> None:
        """Swap in a reloaded policy; counters, deficits and the checkpoint cursor are kept.

        Seats known before but not in ``seats`` (met only in calls) stay, profiled anew as
        humans of team "default" under the new policy.
        """
        known = list(self._seats)
        self.policy = policy
        self._seats = dict(seats)
        for seat in known:
            self.profile(seat)
        self._targets.clear()
        self._targets_version = (-1, -1)  # tiers and calendars may differ: recompute targets

    def site(self, seat: str) -> Site:
        return self.policy.sites[self.profile(seat).site]

    # --- updates -----------------------------------------------------------------------

    def apply(self, effect: Effect) -> list[QuotaEvent]:
        """Effect sink: a finished call credits talk, effective calls, dials and faxes."""
        if not isinstance(effect, CallEnded):
            return []
        return self._add_call(effect.call)

    def add_follow_ups(self, seat: str, at: dt.datetime, count: int = 1) -> list[QuotaEvent]:
        return self.add(seat, local_day(self.site(seat), at), "follow_ups", count, at)

    def add(
        self, seat: str, day: dt.date, quota: QuotaName, amount: float, at: dt.datetime
    ) -> list[QuotaEvent]:
        counters = self._counters.setdefault((self.profile(seat).id, day), {})
        before = counters.get(quota, 0.0)
        counters[quota] = after = before + amount
        target = self._day_targets(seat, day).targets.get(quota)
        if target is not None and not reached(before, target) and reached(after, target):
            site, version = self.profile(seat).site, self.policy.version
            return [QuotaEvent("quota_met", at, day, seat, site, quota, policy_version=version)]
        return []

    def _add_call(self, call: Call) -> list[QuotaEvent]:
        ended = dt.datetime.fromtimestamp(call.ended_at or call.started_at, dt.UTC)
        events: list[QuotaEvent] = []
        talk_per_seat: dict[str, float] = {}
        for segment in call.segments.values():
            tz = self.site(segment.seat).tz
            talk_per_seat[segment.seat] = talk_per_seat.get(segment.seat, 0.0) + (
                segment.talk_seconds
            )
            for start, end in segment.talk_intervals:
                for day, seconds in split_by_local_day(start, end, tz):
                    events += self.add(segment.seat, day, "talk_minutes", seconds / 60, ended)
        if call.placed_by is not None:
            day = self._call_day(call.placed_by, call)
            events += self.add(call.placed_by, day, "dials", 1, ended)
            if call.fax:
                events += self.add(call.placed_by, day, "faxes", 1, ended)
        if not call.fax:  # same rule as the tracker's tallies: a fax is never an effective call
            for seat, talk in talk_per_seat.items():
                if talk >= self.policy.effective_call_seconds:
                    day = self._call_day(seat, call)
                    events += self.add(seat, day, "effective_calls", 1, ended)
        return events

    def _call_day(self, seat: str, call: Call) -> dt.date:
        return dt.datetime.fromtimestamp(call.started_at, self.site(seat).tz).date()

    def forget_before(self, day: dt.date) -> None:
        """Drop counters, cached targets and make-up debts of days before ``day``."""
        for store in (self._counters, self._targets, self._deficits):
            for key in [key for key in store if key[1] < day]:
                del store[key]

    # --- state -------------------------------------------------------------------------

    def actuals(self, seat: str, day: dt.date) -> dict[QuotaName, float]:
        return dict(self._counters.get((seat, day), {}))

    def targets(self, seat: str, day: dt.date) -> dict[QuotaName, float]:
        return dict(self._day_targets(seat, day).targets)

    def deficit(self, seat: str, makeup_day: dt.date) -> dict[QuotaName, float]:
        """What the seat has to make up on ``makeup_day`` (before that day's work)."""
        return dict(self._deficits.get((seat, makeup_day), {}))

    def _day_targets(self, seat: str, day: dt.date) -> _DayTargets:
        version = (self.adjustments.version, self._deficit_version)
        if version != self._targets_version:
            self._targets.clear()
            self._targets_version = version
        cached = self._targets.get((seat, day))
        if cached is None:
            cached = self._targets[(seat, day)] = self._compute_targets(seat, day)
        return cached

    def _compute_targets(self, seat: str, day: dt.date) -> _DayTargets:
        profile, site = self.profile(seat), self.site(seat)
        tier = choose_tier(self.policy.tiers, profile, day)
        targets: dict[QuotaName, float] = {}
        if is_workday(site, day):
            targets = adjusted_targets(
                tier.quotas.as_dict(),
                self.adjustments.for_day(seat, day),
                site.shift_hours,
                self.policy.field_visit_reduces,
            )
        deficit = self._deficits.get((seat, day), {})
        for quota, missing in deficit.items():
            targets[quota] = targets.get(quota, 0.0) + missing
        name = tier.name if is_workday(site, day) or not deficit else MAKEUP_TIER
        return _DayTargets(name, targets, bool(deficit))

    # --- evaluation --------------------------------------------------------------------

    def evaluate(self, seat: str, now: dt.datetime, day: dt.date | None = None) -> SeatEvaluation:
        """Progress of ``seat`` on ``day`` (default: the site's local date of ``now``)."""
        site = self.site(seat)
        day = day or local_day(site, now)
        planned = self._day_targets(seat, day)
        actuals = self._counters.get((self.profile(seat).id, day), {})
        share = dialing_progress(site, day, now)
        after_eod = now.timestamp() >= end_of_day(site, day).timestamp()
        quotas = {
            quota: quota_progress(
                quota, target, actuals.get(quota, 0.0), share, after_eod, self.policy.at_risk_below
            )
            for quota, target in planned.targets.items()
            if target > 0
        }
        status = worst_status([p.status for p in quotas.values()])
        fine = fine_for(quotas, self.policy.fines)
        return SeatEvaluation(
            self.profile(seat), day, planned.tier, planned.makeup, quotas, status, fine
        )

    def floor_progress(
        self, now: dt.datetime, seats: Iterable[str] | None = None
    ) -> Iterator[tuple[str, list[QuotaPace]]]:
        """Each of ``seats`` (default: all) with a quota today at ``now``: its (quota, target,
        actual, status); seats the engine does not know are left out.

        The statuses :meth:`evaluate` gives, for the whole floor at once: a site's day, dialing
        share and end of day are worked out once, not once per seat (per-seat gauges ask this
        every scrape, on the event loop).
        """
        at_risk = self.policy.at_risk_below
        stamp = now.timestamp()
        moments: dict[str, tuple[dt.date, float, bool]] = {}
        known = self._seats
        for seat in known if seats is None else seats:
            profile = known.get(seat)
            if profile is None:
                continue
            moment = moments.get(profile.site)
            if moment is None:
                site = self.policy.sites[profile.site]
                day = local_day(site, now)
                after_eod = stamp >= end_of_day(site, day).timestamp()
                moment = moments[profile.site] = (day, dialing_progress(site, day, now), after_eod)
            day, share, after_eod = moment
            targets = self._day_targets(seat, day).targets
            actuals = self._counters.get((profile.id, day), _NO_COUNTS)
            paces = [
                (quota, target, actual, pace_status(target, actual, share, after_eod, at_risk))
                for quota, target in targets.items()
                if target > 0
                for actual in (actuals.get(quota, 0.0),)
            ]
            if paces:
                yield seat, paces

    # --- checkpoints -------------------------------------------------------------------

    def next_checkpoint(self) -> dt.datetime:
        return min(
            (next_checkpoint(site, self._cursor) for site in self.policy.sites.values()),
            key=dt.datetime.timestamp,
        )

    def due_events(self, since: dt.datetime, now: dt.datetime) -> list[QuotaEvent]:
        """Events of the checkpoints in ``(since, now]``; counters as they are now."""
        events: list[QuotaEvent] = []
        for site_name, site in self.policy.sites.items():
            seats = [s for s in self._seats.values() if s.site == site_name]
            for day, at, kind in checkpoints_between(site, since, now):
                events += self._checkpoint_events(site, site_name, seats, day, at, kind)
        return sorted(events, key=lambda event: event.at.timestamp())

    def advance(self, now: dt.datetime) -> list[QuotaEvent]:
        events = self.due_events(self._cursor, now)
        self._cursor = max(self._cursor, now, key=dt.datetime.timestamp)
        # The running engine answers for today (and make-up days soon after); period reports
        # read the store.  Without this a daemon keeps one day per seat for its lifetime.
        horizon = self._cursor.date() - KEEP_DAYS
        if horizon > self._forgotten_before:
            self.forget_before(horizon)
            self._forgotten_before = horizon
        for event in events:
            if event.kind == "grace_shortfall" and event.makeup_day and event.seat:
                owed = self._deficits.setdefault((event.seat, event.makeup_day), {})
                for quota, missing in event.shortfall.items():
                    owed[quota] = owed.get(quota, 0.0) + missing
                self._deficit_version += 1
        return events

    def _checkpoint_events(
        self,
        site: Site,
        site_name: str,
        seats: list[SeatProfile],
        day: dt.date,
        at: dt.datetime,
        kind: Checkpoint,
    ) -> list[QuotaEvent]:
        evaluations = [self.evaluate(seat.id, at, day) for seat in seats]
        working = [e for e in evaluations if e.status != "off"]
        if kind is Checkpoint.REPORT:
            due = QuotaEvent(
                "report_due", at, day, site=site_name, policy_version=self.policy.version
            )
            return [due] if working else []
        wanted: dict[Checkpoint, tuple[EventKind, set[Status]]] = {
            Checkpoint.PACE: ("behind_pace", {"behind", "at_risk"}),
            Checkpoint.END_OF_DAY: ("eod_shortfall", {"short"}),
            Checkpoint.GRACE_END: ("grace_shortfall", {"short"}),
        }
        event_kind, statuses = wanted[kind]
        events: list[QuotaEvent] = []
        for evaluation in working:
            if evaluation.status not in statuses:
                continue
            shortfall = evaluation.shortfall
            if kind is Checkpoint.PACE:  # how far behind the pro-rata line, not the day's total
                shortfall = {
                    q: p.expected - p.actual
                    for q, p in evaluation.quotas.items()
                    if p.status in statuses
                }
            seat = evaluation.seat
            makeup = None
            # Robots do not come in on Sunday; a make-up day is not itself made up again.
            if kind is Checkpoint.GRACE_END and not evaluation.makeup and seat.kind == "human":
                makeup = makeup_day_after(site, day)
            version = self.policy.version
            events.append(
                QuotaEvent(
                    event_kind, at, day, seat.id, site_name, None, shortfall, makeup, version
                )
            )
        return events
