"""When each simulated call happens, on which seats, with which template: pure and seeded.

Every seat places (or takes) calls one at a time, at about ``calls_per_seat_hour``: after a
call it waits an exponentially distributed gap, sized so the cycle of call plus gap averages
``3600 / calls_per_seat_hour`` seconds.  A template that needs more seats (a queue rings five
members, a transfer or an internal call has a second seat) takes seats idle at that moment and
keeps them busy until its recording leaves them; with too few idle seats a one-seat template
is used instead.  So no seat is ever in two calls at once, as on a real floor.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from ctid.errors import InputError
from ctid.simulate.template import Template, TemplateSet

DEFAULT_MIX: Mapping[str, float] = {
    "answered_customer_hangup": 24,
    "answered_seat_hangup": 18,
    "short_answered": 8,
    "hold_mid_call": 6,
    "no_answer": 12,
    "busy": 5,
    "congestion": 3,
    "inbound_queue_answered": 14,
    "inbound_queue_abandoned": 2,
    "internal_call": 3,
    "blind_transfer": 4,
    "fax_receive": 1,
}
"""Relative weights of the templates (a telesales floor: mostly outbound, some queue calls)."""
MAX_SEATS = 10_000
MAX_DURATION_S = 7 * 86_400.0
MIN_GAP_S = 1.0
FIRST_SEAT = 1001
_GIVEN = ("Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Henry", "Iris", "Jack")
_FAMILY = ("Smith", "Jones", "White", "Brown", "Green", "Black", "Hall", "King", "Wood", "Lee")
_CJK_FAMILY = ("张", "李", "王", "刘", "陈", "杨", "赵", "黄", "周", "吴")
_CJK_GIVEN = ("伟", "娜", "芳", "敏", "静", "磊", "洋", "勇", "艳", "杰")


@dataclass(frozen=True, slots=True)
class SimulationSpec:
    seats: int
    start: float
    """Epoch seconds of the simulated PBX's clock when the first calls may begin."""
    seed: int
    calls_per_seat_hour: float = 12.0
    duration: float = 3600.0
    """Calls start within this many seconds; the last ones run on to their natural end."""
    extra_talk: tuple[int, int] = (0, 120)
    """Whole seconds added to the talk of each answered call, drawn uniformly."""
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))

    def check(self, templates: TemplateSet) -> None:
        """Raise :class:`InputError` (one line) for values the simulator cannot honour."""
        if not 1 <= self.seats <= MAX_SEATS:
            raise InputError(f"--seats must be between 1 and {MAX_SEATS}, not {self.seats}")
        if not 0 < self.calls_per_seat_hour <= 3600:
            raise InputError(
                f"--calls-per-seat-hour must be above 0 and at most 3600, "
                f"not {self.calls_per_seat_hour:g}"
            )
        if not 0 < self.duration <= MAX_DURATION_S:
            raise InputError(
                f"--duration must be above 0 and at most 7 days, not {self.duration:g} s"
            )
        if not 1e9 <= self.start <= 9e9:
            raise InputError(f"start must be a 10-digit epoch time, not {self.start:g}")
        low, high = self.extra_talk
        if not 0 <= low <= high <= 3600:
            raise InputError("--extra-talk must be LOW-HIGH with 0 <= LOW <= HIGH <= 3600 s")
        unknown = sorted(set(self.mix) - set(templates.templates))
        if unknown:
            raise InputError(f"unknown call templates: {', '.join(unknown)}")
        if not any(w > 0 for w in self.mix.values()) or any(w < 0 for w in self.mix.values()):
            raise InputError("template weights must be >= 0 with at least one above 0")


@dataclass(frozen=True, slots=True)
class PlannedCall:
    template: str
    shift: int
    """Whole seconds added to the recording's times (whole, so CDR seconds stay exact)."""
    extra: int
    """Seconds of talk inserted at the template's cut."""
    seats: tuple[str, ...]
    """Simulated seat for each of the template's recorded seats, in the same order."""
    number: str | None
    uid_base: int
    """First uniqueid counter of this call (``pbx-<epoch>.<counter>``)."""
    suffix_base: int
    """First channel-name suffix counter of this call (``PJSIP/1001-<8 hex>``)."""
    seed: int
    """Seeds the call's bridge and SIP dialog UUIDs and RTP SSRCs."""


def seat_ids(count: int) -> list[str]:
    return [str(FIRST_SEAT + i) for i in range(count)]


def seat_name(seat: str) -> str:
    """A stable display name per seat; every other one in Chinese (UTF-8 on the wire)."""
    index = int(seat) - FIRST_SEAT
    if index % 2:
        return _CJK_FAMILY[(index // 20) % 10] + _CJK_GIVEN[(index // 2) % 10]
    return f"{_GIVEN[(index // 2) % 10]} {_FAMILY[(index // 20) % 10]}"


def plan_calls(spec: SimulationSpec, templates: TemplateSet) -> list[PlannedCall]:
    """Every call of the simulation, ordered by start time."""
    spec.check(templates)
    return _Planner(spec, templates).run()


class _Planner:
    def __init__(self, spec: SimulationSpec, templates: TemplateSet) -> None:
        self.spec, self.templates = spec, templates
        self.rng = random.Random(spec.seed)
        self.seats = seat_ids(spec.seats)
        self.free_at = [spec.start] * spec.seats
        self.names = [n for n, w in spec.mix.items() if w > 0]
        self.weights = [spec.mix[n] for n in self.names]
        cycle = 3600.0 / spec.calls_per_seat_hour
        self.gap = max(cycle - self._mean_busy(), MIN_GAP_S)
        self.attempts = [(spec.start + self.rng.uniform(0, cycle), i) for i in range(spec.seats)]
        heapq.heapify(self.attempts)
        self.uid_base = self.suffix_base = 1

    def _mean_busy(self) -> float:
        """Average seconds a call keeps the seat that drew it, over the mix."""
        low, high = self.spec.extra_talk
        busy = []
        for name in self.names:
            t = self.templates[name]
            span = t.seat_spans[t.seats[0]] if t.seats else (t.start, t.start)
            extra = (low + high) / 2 if t.cut is not None and t.seats else 0.0
            busy.append(span[1] - span[0] + extra)
        return sum(b * w for b, w in zip(busy, self.weights, strict=True)) / sum(self.weights)

    def run(self) -> list[PlannedCall]:
        calls: list[PlannedCall] = []
        end = self.spec.start + self.spec.duration
        while self.attempts:
            at, seat = heapq.heappop(self.attempts)
            if at >= end:
                continue
            if self.free_at[seat] > at:  # taken meanwhile by another seat's call
                heapq.heappush(self.attempts, (self.free_at[seat] + self._gap(), seat))
                continue
            template, others = self._choose(at, seat)
            calls.append(self._place(template, at, [seat, *others]))
            again = self.free_at[seat] if template.seats else at
            heapq.heappush(self.attempts, (again + self._gap(), seat))
        return sorted(calls, key=lambda c: self.templates[c.template].start + c.shift)

    def _gap(self) -> float:
        return self.rng.expovariate(1.0 / self.gap)

    def _choose(self, at: float, seat: int) -> tuple[Template, list[int]]:
        name = self.rng.choices(self.names, self.weights)[0]
        template = self.templates[name]
        needed = max(len(template.seats) - 1, 0)
        others = self._idle_seats(at, seat, needed)
        if others is not None:
            return template, others
        # Too few idle seats: a call of one seat (or none) instead.
        names = [n for n in self.names if len(self.templates[n].seats) <= 1]
        if not names:
            raise InputError("every call template in the mix needs more seats than there are")
        name = self.rng.choices(names, [self.spec.mix[n] for n in names])[0]
        return self.templates[name], []

    def _idle_seats(self, at: float, seat: int, needed: int) -> list[int] | None:
        if needed == 0:
            return []
        count = len(self.free_at)
        probe = self.rng.sample(range(count), min(count, 4 * needed + 16))
        idle = [i for i in probe if i != seat and self.free_at[i] <= at][:needed]
        return idle if len(idle) == needed else None

    def _place(self, template: Template, at: float, seats: list[int]) -> PlannedCall:
        shift = math.ceil(at - template.start)
        extra = self.rng.randint(*self.spec.extra_talk) if template.cut is not None else 0
        for recorded, seat in zip(template.seats, seats, strict=False):
            busy_until = template.moved(template.seat_spans[recorded][1], shift, extra)
            self.free_at[seat] = busy_until
        call = PlannedCall(
            template=template.name,
            shift=shift,
            extra=extra,
            seats=tuple(self.seats[i] for i in seats[: len(template.seats)]),
            number=_customer_number(self.rng, template.number),
            uid_base=self.uid_base,
            suffix_base=self.suffix_base,
            seed=self.rng.getrandbits(64),
        )
        self.uid_base += template.uid_span
        self.suffix_base += template.suffix_span
        return call


def _customer_number(rng: random.Random, recorded: str | None) -> str | None:
    """A number of the recorded one's shape: same length, same first two digits."""
    if recorded is None:
        return None
    tail = "".join(rng.choice("0123456789") for _ in recorded[2:])
    return recorded[:2] + tail
