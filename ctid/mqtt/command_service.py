"""Commands over MQTT, applied: ``optout`` and ``adjust`` on the daemon's engines, answered.

:class:`MqttCommands` subscribes to ``<prefix>/<site>/command/+`` through the publisher (which
renews the subscription after every reconnect) and handles each message on the event loop:
read (:mod:`ctid.mqtt.commands`), check the shared token, validate with the HTTP API's models,
apply the way the other paths do — an opt-out like a dialplan ``CtidOptOut`` (journalled by
the compliance service's timer), an adjustment through :func:`ctid.api.record_adjustment` —
and answer on the reply topic.  Refusals are counted, and logged once per kind: whoever can
publish to the broker could otherwise fill the log.
"""

from __future__ import annotations

import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from ctid.api import (
    NewAdjustment,
    Refused,
    adjustment_json,
    first_problem,
    record_adjustment,
    writable_engine,
)
from ctid.compliance.numbers import is_phone_number
from ctid.mqtt.commands import (
    COMMANDS,
    CommandTopics,
    OptOutCommand,
    Rejected,
    Request,
    read_request,
    reply_error,
    reply_ok,
)
from ctid.mqtt.publisher import Incoming
from ctid.privacy import mask_number

if TYPE_CHECKING:
    from ctid.compliance.service import ComplianceService
    from ctid.policy.engine import QuotaEngine

log = structlog.get_logger("ctid.mqtt")

UNAUTHORIZED = "missing or wrong token"
NO_COMPLIANCE = "no compliance policy loaded: set compliance"
REMEMBERED_REPLIES = 1000
"""Answers kept for requests sent again (QoS 1 is at-least-once; a client may resend)."""


class CommandHost(Protocol):
    """What the commands act on (:class:`ctid.floor.Floor` fits)."""

    @property
    def quota(self) -> QuotaEngine | None: ...

    @property
    def compliance(self) -> ComplianceService | None: ...


class Subscriber(Protocol):
    """The publisher's side the commands use (:class:`ctid.mqtt.publisher.MqttPublisher`)."""

    def subscribe(self, topic: str, handler: Callable[[Incoming], None]) -> None: ...

    def offer_to(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> bool: ...


class MqttCommands:
    def __init__(
        self,
        publisher: Subscriber,
        host: CommandHost,
        topics: CommandTopics,
        token: str,
        registry: CollectorRegistry,
        *,
        show_numbers: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._publisher = publisher
        self._host = host
        self._topics = topics
        self._token = token.encode()
        self._show = show_numbers
        self._clock = clock
        self._logged: set[str] = set()
        self._answered: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()
        self._handled = Counter(
            "ctid_mqtt_commands",
            "MQTT commands received, by command and outcome (ok, or why it was refused)",
            ["command", "outcome"],
            registry=registry,
        )
        publisher.subscribe("command/+", self.on_message)

    def on_message(self, message: Incoming) -> None:
        """Handler for ``command/+``: apply the request and answer it, or answer why not."""
        command = self._topics.command_name(message.topic)
        try:
            request = read_request(
                self._topics, message.topic, message.payload, retained=message.retain
            )
            self._authorize(request)
            outcome, reply = self._answer(request)
        except Rejected as rejected:
            self._refuse(command, rejected)
            return
        self._count(command, outcome)
        self._publisher.offer_to(request.reply_topic, reply)

    def _answer(self, request: Request) -> tuple[str, dict[str, Any]]:
        """(outcome, reply); a request seen before gets its first answer, and is not applied."""
        key = _identity(request)
        known = self._answered.get(key)
        if known is not None:
            return "duplicate", known
        reply = reply_ok(request.request_id, self._apply(request))
        self._answered[key] = reply
        if len(self._answered) > REMEMBERED_REPLIES:
            self._answered.popitem(last=False)
        return "ok", reply

    def _authorize(self, request: Request) -> None:
        given = (request.token or "").encode()
        if not hmac.compare_digest(given, self._token):
            raise _rejected(request, "unauthorized", UNAUTHORIZED)

    def _apply(self, request: Request) -> dict[str, Any]:
        if request.command == "adjust":
            return self._adjust(request)
        return self._optout(request)

    def _adjust(self, request: Request) -> dict[str, Any]:
        try:
            new = NewAdjustment.model_validate(request.body)
            entry = record_adjustment(writable_engine(self._host.quota), new)
        except ValidationError as err:
            raise _rejected(request, "invalid", first_problem(err)) from None
        except Refused as refused:
            raise _rejected(request, "refused", refused.message) from None
        log.info(
            "mqtt_command_applied",
            command="adjust",
            request_id=request.request_id,
            adjustment=entry.id,
            seat=entry.seat,
            day=str(entry.day),
            kind=entry.kind,
            who=entry.by,
            why=entry.reason,
        )
        return adjustment_json(entry, active=True)

    def _optout(self, request: Request) -> dict[str, Any]:
        try:
            optout = OptOutCommand.model_validate(request.body)
        except ValidationError as err:
            raise _rejected(request, "invalid", first_problem(err)) from None
        compliance = self._host.compliance
        if compliance is None:
            raise _rejected(request, "refused", NO_COMPLIANCE)
        if not is_phone_number(optout.number, compliance.settings.default_region):
            raise _rejected(request, "invalid", "number: not a phone number")
        optouts = compliance.guard.optouts
        added = optout.number not in optouts
        # The same list and journal as a dialplan opt-out; the journal names who asked.
        optouts.add(optout.number, self._clock(), source=f"mqtt:{optout.who}")
        masked = mask_number(optout.number)
        log.info(
            "mqtt_command_applied",
            command="optout",
            request_id=request.request_id,
            number=masked,
            added=added,
            who=optout.who,
            why=optout.why,
        )
        shown = mask_number(optout.number, show=self._show)
        return {"number": shown, "added": added}

    def _refuse(self, command: str, rejected: Rejected) -> None:
        self._count(command, rejected.kind)
        if rejected.kind not in self._logged:
            self._logged.add(rejected.kind)
            log.warning(
                "mqtt_command_rejected",
                reason=rejected.kind,
                error=rejected.message,
                request_id=rejected.request_id,
                note="logged once per reason; see ctid_mqtt_commands_total",
            )
        if rejected.reply_topic is not None:
            body = reply_error(rejected.request_id, rejected.message)
            self._publisher.offer_to(rejected.reply_topic, body)

    def _count(self, command: str, outcome: str) -> None:
        # Bounded labels: a topic level the sender chose is not one.
        label = command if command in COMMANDS else "unknown"
        self._handled.labels(command=label, outcome=outcome).inc()


def _identity(request: Request) -> tuple[str, str, str]:
    """A request is the same one again only with the same id *and* body (ids may collide)."""
    body = json.dumps(request.body, sort_keys=True, separators=(",", ":"))
    return request.command, request.request_id, body


def _rejected(request: Request, kind: str, message: str) -> Rejected:
    return Rejected(kind, message, request_id=request.request_id, reply_topic=request.reply_topic)
