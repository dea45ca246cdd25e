"""What the live feed publishes: call events and retained seat states, numbers masked.

Topics, under ``<prefix>/<site>/``:

* ``call/started``, ``call/answered``, ``call/ended`` — one JSON message per call and step;
* ``seat/<seat>/state`` — retained: the seat's live state, republished after every reconnect.

:class:`CallFeed` is an effect sink (for ``CallEnded``) plus a hook called after each batch of
AMI messages (started/answered are not tracker effects: they are read off the tracker's open
calls that the batch touched).  :class:`SeatStateFeed` compares seat states once a second and
publishes the seats that changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from ctid.ami.codec import Message
from ctid.live.seat_state import SeatStatus
from ctid.privacy import mask_number
from ctid.tracker.model import Call, CallEnded, Effect
from ctid.tracker.tracker import CallTracker

_CALL_KEYS = ("Linkedid", "Uniqueid", "DestUniqueid", "DestLinkedid")
_TOPIC_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_"})


def topic_level(name: str) -> str:
    """A seat id as one topic level: ``/`` would split it, ``+``/``#`` are wildcards."""
    return name.translate(_TOPIC_UNSAFE) or "_"


class Offer(Protocol):
    """The publisher's producer side (:meth:`ctid.mqtt.publisher.MqttPublisher.offer`)."""

    def offer(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> bool: ...


def call_payload(call: Call, teams: Mapping[str, str], *, show_numbers: bool) -> dict[str, Any]:
    """The JSON body of a call event: no customer number in full unless ``show_numbers``."""
    seat = call.seat
    body: dict[str, Any] = {
        "pbx": call.pbx,
        "call_id": call.linkedid,
        "direction": str(call.direction),
        "number": mask_number(call.remote, show=show_numbers) if call.remote else None,
        "seat": seat,
        "team": teams.get(seat, "default") if seat else None,
        "started_at": call.started_at,
        "answered_at": call.answered_at,
    }
    if call.ended_at is not None:
        body.update(
            ended_at=call.ended_at,
            outcome=str(call.outcome) if call.outcome else None,
            talk_seconds=round(call.talk_seconds, 3),
            hold_seconds=round(call.hold_seconds, 3),
            ring_seconds=None if call.ring_seconds is None else round(call.ring_seconds, 3),
            seats=call.seats_talked(),
            fax=call.fax,
            interrupted=call.interrupted,
        )
    return body


class CallFeed:
    """``call/started|answered|ended``, each once per call and in that order."""

    def __init__(
        self, publisher: Offer, teams: Mapping[str, str], *, show_numbers: bool = False
    ) -> None:
        self._publisher = publisher
        self._teams = teams
        self._show = show_numbers
        self._announced: dict[tuple[str, str], bool] = {}
        """(pbx, linkedid) → answered announced, for open calls that were announced started."""

    def __call__(self, effect: Effect) -> None:
        """Effect sink: a call ended (announcing its start and answer first if not yet done)."""
        if isinstance(effect, CallEnded):
            call = effect.call
            self._step(call)
            self._publish("ended", call)
            self._announced.pop((call.pbx, call.linkedid), None)

    def after_batch(self, tracker: CallTracker, batch: Iterable[Message]) -> None:
        """Hook after the pipeline applied ``batch``: announce calls it started or answered."""
        linkedids: set[str] = set()
        channels = tracker.channels
        for message in batch:
            headers = message.headers
            for key in _CALL_KEYS:
                value = headers.get(key)
                if value:
                    channel = channels.get(value)
                    linkedids.add(channel.linkedid if channel is not None else value)
        for linkedid in linkedids:
            call = tracker.calls.get(linkedid)
            if call is not None:
                self._step(call)

    def _step(self, call: Call) -> None:
        key = (call.pbx, call.linkedid)
        answered = self._announced.get(key)
        if answered is None:
            self._publish("started", call)
            self._announced[key] = answered = False
        if not answered and call.answered_at is not None:
            self._publish("answered", call)
            self._announced[key] = True

    def _publish(self, event: str, call: Call) -> None:
        body = call_payload(call, self._teams, show_numbers=self._show)
        body["event"] = event
        self._publisher.offer(f"call/{event}", body)


SeatStates = Callable[[float], Mapping[str, SeatStatus]]


class SeatStateFeed:
    """Retained ``seat/<seat>/state`` messages for seats whose state changed."""

    def __init__(
        self,
        publisher: Offer,
        states: SeatStates,
        teams: Mapping[str, str],
        clock: Callable[[], float],
        interval: float = 1.0,
    ) -> None:
        self._publisher = publisher
        self._states = states
        self._teams = teams
        self._clock = clock
        self._interval = interval
        self._published: dict[str, SeatStatus] = {}

    def publish_changes(self) -> int:
        """Publish seats whose state differs from the last published; returns how many."""
        changed = 0
        for seat, status in self._states(self._clock()).items():
            known = self._published.get(seat)
            if known is not status and known != status and self._send(seat, status):
                self._published[seat] = status
                changed += 1
        return changed

    def republish(self) -> None:
        """After a (re)connect: the broker may have lost retained messages (restart)."""
        self._published.clear()

    def _send(self, seat: str, status: SeatStatus) -> bool:
        body = {
            "seat": seat,
            "team": self._teams.get(seat, "default"),
            "state": str(status.state),
            "since": status.since,
        }
        return self._publisher.offer(f"seat/{topic_level(seat)}/state", body, retain=True)

    async def run(self) -> None:
        while True:
            self.publish_changes()
            await asyncio.sleep(self._interval)
