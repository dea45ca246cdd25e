"""Turn planned calls into AMI frames: fill each template's slots, merge calls by time.

Rendering is lazy: a call's frames are made when the merged stream reaches them, so memory
grows with the calls open at one moment, not with the length of the simulation.
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import overload

from ctid.ami.capture import RecordedFrame
from ctid.simulate.compile import Slot, SlotKind
from ctid.simulate.frames import format_datetime
from ctid.simulate.plan import PlannedCall, seat_name
from ctid.simulate.template import Template, TemplateSet

Progress = Callable[[int, float | None], None]
"""Called with (frames so far, PBX time of the last one) while a stream is read."""


class Renamer:
    """One call's identifiers: recorded value → simulated value."""

    def __init__(self, template: Template, call: PlannedCall) -> None:
        self.template, self.call = template, call
        self.seats = dict(zip(template.seats, call.seats, strict=True))
        self.names = {template.seat_names[s]: seat_name(seat) for s, seat in self.seats.items()}

    def offset(self, moves: bool) -> int:
        return self.call.shift + (self.call.extra if moves else 0)

    def uid(self, recorded: str, moves: bool | None = None) -> str:
        """``pbx-<epoch>.<counter>``: the epoch of the channel's creation, a fresh counter."""
        head, _, counter = recorded.rpartition(".")
        system, _, epoch = head.rpartition("-")
        if moves is None:
            cut = self.template.cut
            moves = cut is not None and int(epoch) >= cut
        new_counter = self.call.uid_base + int(counter) - self.template.uid_floor
        return f"{system}-{int(epoch) + self.offset(moves)}.{new_counter}"

    def suffix(self, recorded: str) -> str:
        return f"{self.call.suffix_base + int(recorded, 16) - self.template.suffix_floor:08x}"

    def channel(self, recorded: str) -> str:
        """``PJSIP/1001-0000000c`` → the simulated seat's endpoint and a fresh suffix."""
        tech, _, rest = recorded.partition("/")
        endpoint, _, suffix = rest.rpartition("-")
        return f"{tech}/{self.seats.get(endpoint, endpoint)}-{self.suffix(suffix)}"

    def customer_name(self) -> str:
        return f"Customer {(self.call.number or '')[-4:]}"


def slot_values(template: Template, call: PlannedCall) -> list[bytes]:
    """The bytes of every slot of ``template`` for ``call``."""
    renamer = Renamer(template, call)
    rng = random.Random(call.seed)
    ssrcs: dict[int, int] = {}
    values: list[bytes] = []
    for slot in template.compiled.slots:
        values.append(_value(slot, renamer, rng, ssrcs).encode())
    return values


def _value(slot: Slot, r: Renamer, rng: random.Random, ssrcs: dict[int, int]) -> str:
    kind, text = slot.kind, slot.text
    if kind is SlotKind.EPOCH_FRAC:
        whole, dot, fraction = text.partition(".")
        return f"{int(whole) + r.offset(slot.moves)}{dot}{fraction}"
    if kind is SlotKind.UID:
        return r.uid(text, slot.moves)
    if kind is SlotKind.SUFFIX:
        return r.suffix(text)
    if kind is SlotKind.SEAT:
        return r.seats[text]
    if kind is SlotKind.NAME:
        return r.names[text]
    if kind is SlotKind.NUMBER:
        return r.call.number or text
    if kind is SlotKind.CUSTOMER_NAME:
        return r.customer_name()
    if kind is SlotKind.UUID:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if kind in (SlotKind.SSRC_HEX, SlotKind.SSRC_DEC):
        recorded = int(text, 16) if kind is SlotKind.SSRC_HEX else int(text)
        new = ssrcs.setdefault(recorded, rng.getrandbits(32))
        return f"0x{new:08x}" if kind is SlotKind.SSRC_HEX else str(new)
    if kind is SlotKind.EPOCH_INT:
        return str(int(text) + r.offset(slot.moves))
    if kind is SlotKind.ISO_MS:
        moved = format_datetime(slot.epoch + r.offset(slot.moves))
        return moved.replace(" ", "T") + text[19:]
    if kind is SlotKind.DATETIME:
        return format_datetime(slot.epoch + r.offset(slot.moves))
    grow = r.call.extra if slot.moves else 0
    if kind is SlotKind.DURATION_MS:
        return str(int(text) + 1000 * grow)
    return str(int(text) + grow)  # DURATION_S


def render_call(template: Template, call: PlannedCall) -> Iterator[RecordedFrame]:
    values = slot_values(template, call)
    table = [*template.compiled.literals, *values].__getitem__
    for frame in template.compiled.frames:
        yield RecordedFrame(b"".join(map(table, frame.parts)), float(values[frame.timestamp]))


def merged_frames(templates: TemplateSet, plan: Sequence[PlannedCall]) -> Iterator[RecordedFrame]:
    """All calls' frames by timestamp; a call's own frames keep their recorded order."""
    heap: list[tuple[float, int, RecordedFrame, Iterator[RecordedFrame]]] = []
    upcoming = iter(enumerate(plan))
    following = next(upcoming, None)
    while heap or following is not None:
        # Start every call whose first frame is due before the earliest pending frame.
        while following is not None and (
            not heap or templates[following[1].template].start + following[1].shift <= heap[0][0]
        ):
            order, call = following
            frames = render_call(templates[call.template], call)
            first = next(frames)
            heapq.heappush(heap, (first.timestamp or 0.0, order, first, frames))
            following = next(upcoming, None)
        _, order, frame, frames = heap[0]
        yield frame
        after = next(frames, None)
        if after is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (after.timestamp or 0.0, order, after, frames))


class SimulatedStream(Sequence[RecordedFrame]):
    """The event frames of a simulation: ``FullyBooted``, then every call, made on demand.

    Iterating is the fast path (the replay server and file writers only iterate); indexing
    renders up to the index, so it is linear and meant for tests and debugging.
    """

    def __init__(
        self,
        templates: TemplateSet,
        plan: Sequence[PlannedCall],
        progress: Progress | None = None,
        every: int = 1000,
    ) -> None:
        self._templates, self._plan = templates, plan
        self._progress, self._every = progress, every
        self._length = 1 + sum(len(templates[c.template].compiled.frames) for c in plan)

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[RecordedFrame]:
        frames = itertools.chain(
            [self._templates.preamble.fully_booted], merged_frames(self._templates, self._plan)
        )
        if self._progress is None:
            yield from frames
            return
        count, last = 0, None
        for count, frame in enumerate(frames, 1):
            last = frame.timestamp or last
            if count % self._every == 0:
                self._progress(count, last)
            yield frame
        self._progress(count, last)

    @overload
    def __getitem__(self, index: int) -> RecordedFrame: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[RecordedFrame]: ...

    def __getitem__(self, index: int | slice) -> RecordedFrame | Sequence[RecordedFrame]:
        if isinstance(index, slice):
            return list(itertools.islice(self, *index.indices(self._length)))
        position = index + self._length if index < 0 else index
        if not 0 <= position < self._length:
            raise IndexError("simulated stream index out of range")
        return next(itertools.islice(self, position, None))
