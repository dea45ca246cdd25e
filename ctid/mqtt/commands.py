"""Commands over MQTT, the pure part: read a request off ``command/<name>``, shape its reply.

A request is one JSON object: the command's fields (for ``adjust`` the body of
``POST /api/adjustments``) plus an envelope — ``request_id`` (required; one topic level),
``reply_to`` (optional topic) and ``token``.  The answer goes to ``reply_to``, else to
``<prefix>/<site>/reply/<request_id>``.  Nothing here touches the network, the clock or the
engines: :mod:`ctid.mqtt.command_service` does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from ctid.api import MAX_BODY_BYTES, AuditedBody

MAX_PAYLOAD_BYTES = MAX_BODY_BYTES
"""The HTTP API's body limit holds for a command's payload too."""
COMMANDS = ("adjust", "optout")
MAX_REPLY_TOPIC = 256
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_NOT_IN_TOPICS = ("+", "#", "\0")
ENVELOPE = ("request_id", "reply_to", "token")


class OptOutCommand(AuditedBody):
    number: str = Field(min_length=1, max_length=32)


class Rejected(Exception):  # noqa: N818 - an answer to the sender, not an error of ours
    """A request refused; answered on ``reply_topic`` when there is one.

    ``kind`` is one of a few fixed words (the ``outcome`` label of ``ctid_mqtt_commands_total``
    and the key of the log-once set); ``message`` is what the sender reads.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        request_id: str | None = None,
        reply_topic: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.request_id = request_id
        self.reply_topic = reply_topic


@dataclass(frozen=True, slots=True)
class Request:
    command: str
    request_id: str
    reply_topic: str
    token: str | None
    body: dict[str, Any]
    """The command's own fields, the envelope taken out."""


@dataclass(frozen=True, slots=True)
class CommandTopics:
    prefix: str
    site: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}"

    def command_name(self, topic: str) -> str:
        return topic.removeprefix(f"{self.base}/command/")

    def reply(self, request_id: str) -> str:
        return f"{self.base}/reply/{request_id}"

    def reply_to_problem(self, topic: object) -> str | None:
        """Why ``reply_to`` cannot be used, or None.

        A reply may not land on ctid's own topics (a forged ``status`` or seat state), except
        under this site's ``reply/``; wildcards and ``$`` topics cannot be published to.
        """
        if not isinstance(topic, str) or not topic:
            return "reply_to: expected a topic name"
        if len(topic.encode()) > MAX_REPLY_TOPIC:
            return f"reply_to: longer than {MAX_REPLY_TOPIC} bytes"
        if topic.startswith("$") or any(char in topic for char in _NOT_IN_TOPICS):
            return "reply_to: not a topic ctid can publish to"
        own = topic.startswith(f"{self.prefix}/") and not topic.startswith(f"{self.base}/reply/")
        if own:
            return f"reply_to: only {self.base}/reply/... of ctid's own topics"
        return None


def read_request(topics: CommandTopics, topic: str, payload: bytes, *, retained: bool) -> Request:
    """The request in ``payload``, or :class:`Rejected` (with a reply topic if one is known)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        # Not read at all: no request_id, so no reply.
        raise Rejected("oversize", f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise Rejected("invalid_json", "Invalid JSON") from None
    if not isinstance(data, dict):
        raise Rejected("invalid_json", "expected a JSON object")
    request_id, reply_topic = _reply_address(topics, data)
    name = topics.command_name(topic)

    def reject(kind: str, message: str) -> Rejected:
        return Rejected(kind, message, request_id=request_id, reply_topic=reply_topic)

    if request_id is None:
        raise reject("envelope", "request_id: expected 1-64 of A-Z a-z 0-9 . _ : -")
    assert reply_topic is not None
    reply_problem = topics.reply_to_problem(data["reply_to"]) if "reply_to" in data else None
    if reply_problem is not None:
        raise reject("envelope", reply_problem)
    if retained:
        # A retained command would run again on every reconnect.
        raise reject("retained", "retained command ignored: publish commands with retain=false")
    if name not in COMMANDS:
        # The name is not echoed: it is whatever the sender put in the topic.
        raise reject("unknown_command", f"unknown command (known: {', '.join(COMMANDS)})")
    token = data.get("token")
    if token is not None and not isinstance(token, str):
        raise reject("unauthorized", "missing or wrong token")
    body = {key: value for key, value in data.items() if key not in ENVELOPE}
    return Request(name, request_id, reply_topic, token, body)


def _reply_address(topics: CommandTopics, data: dict[str, Any]) -> tuple[str | None, str | None]:
    """(request_id if valid, where to answer): ``reply_to`` if usable, else the default."""
    raw_id = data.get("request_id")
    request_id = raw_id if isinstance(raw_id, str) and _REQUEST_ID.fullmatch(raw_id) else None
    reply_to = data.get("reply_to")
    if reply_to is not None and topics.reply_to_problem(reply_to) is None:
        assert isinstance(reply_to, str)
        return request_id, reply_to
    return request_id, topics.reply(request_id) if request_id is not None else None


def reply_ok(request_id: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"request_id": request_id, "ok": True, "result": result}


def reply_error(request_id: str | None, message: str) -> dict[str, Any]:
    return {"request_id": request_id, "ok": False, "error": message}
