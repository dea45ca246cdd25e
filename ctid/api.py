"""The adjustments API on the daemon's HTTP app: list, add and revoke per-seat-day adjustments.

``GET /api/adjustments?date=YYYY-MM-DD[&seat=ID]``, ``POST /api/adjustments`` and
``DELETE /api/adjustments/{id}``; ``POST /api/followups`` stores CRM follow-up claims
(:mod:`ctid.store.followups_api`); ``/api/dnc`` administers the do-not-call list
(:mod:`ctid.compliance.dnc_api`). Writes go straight into the quota engine's
:class:`~ctid.policy.Adjustments`, so targets change at the next scrape (the daemon stores each
entry too); while the entries stored before a restart are not loaded yet, requests get 503.
Every request needs ``Authorization: Bearer <http.api_token>`` when a token is configured;
without one, reads are open (like /metrics) and writes are refused. Errors are JSON
``{"error": "field: message"}``.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, Self

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ctid.compliance import dnc_api
from ctid.errors import PolicyError
from ctid.policy import Adjustment, Adjustments, QuotaEngine, QuotaName, SystemClock, build_report
from ctid.policy.report import report_json
from ctid.store.followups_api import FOLLOWUP_BATCH, FollowUpHost, store_followups
from ctid.store.followups_api import MAX_BODY_BYTES as FOLLOWUPS_MAX_BYTES

MAX_BODY_BYTES = 16 * 1024
WRITES_DISABLED = "API writes disabled: set http.api_token"
NOT_RESTORED = "adjustments stored earlier are not loaded yet (database unreachable); retry shortly"

Handler = Callable[[web.Request], Awaitable[web.Response]]


class QuotaHost(Protocol):
    """What the API needs of the daemon (:class:`ctid.floor.Floor`): its quota engine, if any."""

    @property
    def quota(self) -> QuotaEngine | None: ...


class ApiHost(QuotaHost, FollowUpHost, dnc_api.ComplianceHost, Protocol):
    """The quota engine (adjustments), the store and settings (follow-ups) and the compliance
    service (do-not-call list)."""


class AuditedBody(BaseModel):
    """Every write says who made it and why (the audit trail); the MQTT commands reuse it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    who: str = Field(min_length=1, max_length=128)
    why: str = Field(min_length=1, max_length=1000)


class NewAdjustment(AuditedBody):
    seat: str = Field(min_length=1, max_length=64)
    date: dt.date
    kind: Literal["leave", "half_day", "field_visit", "override"]
    hours: float | None = Field(default=None, gt=0, le=24)
    quota: QuotaName | None = None
    value: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Self:
        wanted = {"field_visit": {"hours"}, "override": {"quota", "value"}}.get(self.kind, set())
        for name in ("hours", "quota", "value"):
            given = getattr(self, name) is not None
            if name in wanted and not given:
                raise ValueError(f"{name} is required for kind {self.kind}")
            if given and name not in wanted:
                raise ValueError(f"{name} is not allowed for kind {self.kind}")
        return self


class Revocation(AuditedBody):
    pass


class Refused(Exception):  # noqa: N818 - an answer to the caller, not an error of ours
    """A request refused: ``status`` is the HTTP status, ``message`` the one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def add_api_routes(app: web.Application, host: ApiHost, *, token: str | None) -> None:
    api = _Api(host, token)
    app.router.add_get("/api/adjustments", api.handle(api.list_adjustments, write=False))
    app.router.add_post("/api/adjustments", api.handle(api.add, write=True))
    app.router.add_delete("/api/adjustments/{id}", api.handle(api.revoke, write=True))
    app.router.add_get("/api/quota/today", api.handle(api.quota_today, write=False))
    app.router.add_post("/api/followups", api.handle(api.add_followups, write=True))
    app.router.add_get("/api/dnc/{number}", api.handle(api.dnc_check, write=False))
    app.router.add_post("/api/dnc", api.handle(api.dnc_add, write=True))
    app.router.add_delete("/api/dnc/{number}", api.handle(api.dnc_remove, write=True))
    app.router.add_post("/api/dnc/import", api.handle(api.dnc_import, write=True))


def adjustment_json(item: Adjustment, active: bool) -> dict[str, Any]:
    return {
        "id": item.id,
        "seat": item.seat,
        "date": item.day.isoformat(),
        "kind": item.kind,
        "hours": item.hours if item.kind == "field_visit" else None,
        "quota": item.quota,
        "value": item.value,
        "revokes": item.revokes,
        "active": active,
        "who": item.by,
        "when": item.at.isoformat(),
        "why": item.reason,
    }


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, ensure_ascii=False), status=status, content_type="application/json"
    )


def first_problem(err: ValidationError) -> str:
    """``field: message`` of the first validation error."""
    error = err.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _active_ids(adjustments: Adjustments) -> set[int]:
    revoked = {a.revokes for a in adjustments.history if a.revokes is not None}
    return {a.id for a in adjustments.history if a.kind != "revoke" and a.id not in revoked}


def writable_engine(engine: QuotaEngine | None) -> QuotaEngine:
    """The quota engine, if adjustments can be recorded in it now."""
    if engine is None:
        raise Refused(409, "no quota policy loaded: set policy.file")
    if not engine.adjustments.restored:
        raise Refused(503, NOT_RESTORED)
    return engine


def record_adjustment(engine: QuotaEngine, new: NewAdjustment) -> Adjustment:
    """Record a validated adjustment (HTTP ``POST`` and the MQTT ``adjust`` command)."""
    if new.seat not in engine.seat_ids():
        raise Refused(400, f"seat: unknown seat {new.seat!r}")
    adjustments = engine.adjustments
    if new.kind in ("leave", "half_day"):
        active = _active_ids(adjustments)
        for old in adjustments.history:
            same = (old.seat, old.day, old.kind) == (new.seat, new.date, new.kind)
            if same and old.id in active:
                raise Refused(409, f"{new.kind} already recorded as #{old.id}")
    at = dt.datetime.now(dt.UTC)
    try:
        if new.kind == "leave":
            return adjustments.leave(new.seat, new.date, by=new.who, at=at, reason=new.why)
        if new.kind == "half_day":
            return adjustments.half_day(new.seat, new.date, by=new.who, at=at, reason=new.why)
        if new.kind == "field_visit":
            assert new.hours is not None
            return adjustments.field_visit(
                new.seat, new.date, new.hours, by=new.who, at=at, reason=new.why
            )
        assert new.quota is not None
        assert new.value is not None
        return adjustments.override(
            new.seat, new.date, new.quota, new.value, by=new.who, at=at, reason=new.why
        )
    except PolicyError as err:
        raise Refused(422, str(err)) from None


class _Api:
    def __init__(self, host: ApiHost, token: str | None) -> None:
        self._host = host
        self._token = token.encode() if token else None

    def handle(self, method: Handler, *, write: bool) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            try:
                self._authorize(request, write=write)
                result: web.Response = await method(request)
            except Refused as refused:
                return _json({"error": refused.message}, refused.status)
            return result

        return handler

    def _authorize(self, request: web.Request, *, write: bool) -> None:
        if self._token is None:
            if write:
                raise Refused(403, WRITES_DISABLED)
            return
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), self._token):
            raise Refused(401, "missing or wrong bearer token (Authorization: Bearer ...)")

    def _engine(self) -> QuotaEngine:
        return writable_engine(self._host.quota)

    async def _body(self, request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
        if request.content_length is not None and request.content_length > limit:
            raise Refused(413, f"body larger than {limit} bytes")
        body = bytearray()
        # read(n) returns what has arrived so far: a large body comes in several chunks.
        while chunk := await request.content.read(limit + 1 - len(body)):
            body += chunk
            if len(body) > limit:
                raise Refused(413, f"body larger than {limit} bytes")
        return bytes(body)

    async def add_followups(self, request: web.Request) -> web.Response:
        try:
            items = FOLLOWUP_BATCH.validate_json(await self._body(request, FOLLOWUPS_MAX_BYTES))
        except ValidationError as err:
            raise Refused(400, first_problem(err)) from None
        status, answer = await store_followups(self._host, items)
        return _json(answer, status)

    async def dnc_check(self, request: web.Request) -> web.Response:
        status, answer = dnc_api.check(self._host, request.match_info["number"])
        return _json(answer, status)

    async def dnc_add(self, request: web.Request) -> web.Response:
        try:
            new = dnc_api.NewOptOut.model_validate_json(await self._body(request))
        except ValidationError as err:
            raise Refused(400, first_problem(err)) from None
        status, answer = dnc_api.add(self._host, new, time.time())
        return _json(answer, status)

    async def dnc_remove(self, request: web.Request) -> web.Response:
        body = await self._body(request)  # who and why are optional: the body may be empty
        try:
            change = dnc_api.OptOutChange.model_validate_json(body or b"{}")
        except ValidationError as err:
            raise Refused(400, first_problem(err)) from None
        number = request.match_info["number"]
        status, answer = dnc_api.remove(self._host, number, change, time.time())
        return _json(answer, status)

    async def dnc_import(self, request: web.Request) -> web.Response:
        """A CSV body; ``who`` and ``reason`` come as query parameters."""
        try:
            change = dnc_api.OptOutChange.model_validate(dict(request.query))
        except ValidationError as err:
            raise Refused(400, first_problem(err)) from None
        body = await self._body(request, dnc_api.MAX_IMPORT_BYTES)
        status, answer = await dnc_api.import_csv(self._host, body, change, time.time())
        return _json(answer, status)

    async def quota_today(self, request: web.Request) -> web.Response:
        """Today's end-of-day report as of now (``ctid report today`` without capture files)."""
        engine = self._engine()
        return _json(report_json(build_report(engine, SystemClock().now())))

    async def list_adjustments(self, request: web.Request) -> web.Response:
        adjustments = self._engine().adjustments
        day: dt.date | None = None
        if "date" in request.query:
            try:
                day = dt.date.fromisoformat(request.query["date"])
            except ValueError:
                raise Refused(400, "date: expected YYYY-MM-DD") from None
        seat = request.query.get("seat")
        active = _active_ids(adjustments)
        items = [
            adjustment_json(a, a.id in active)
            for a in adjustments.history
            if (day is None or a.day == day) and (seat is None or a.seat == seat)
        ]
        return _json({"adjustments": items})

    async def add(self, request: web.Request) -> web.Response:
        engine = self._engine()
        try:
            new = NewAdjustment.model_validate_json(await self._body(request))
        except ValidationError as err:
            raise Refused(400, first_problem(err)) from None
        entry = record_adjustment(engine, new)
        return _json(adjustment_json(entry, active=True), 201)

    async def revoke(self, request: web.Request) -> web.Response:
        adjustments = self._engine().adjustments
        raw = request.match_info["id"]
        target = next((a for a in adjustments.history if str(a.id) == raw), None)
        if target is None:
            raise Refused(404, f"no adjustment {raw!r}")
        try:
            body = Revocation.model_validate_json(await self._body(request))
        except ValidationError as err:
            raise Refused(400, first_problem(err)) from None
        if target.id not in _active_ids(adjustments):
            raise Refused(409, f"adjustment #{target.id} is not active (revoked, or a revocation)")
        entry = adjustments.revoke(
            target.id, by=body.who, at=dt.datetime.now(dt.UTC), reason=body.why
        )
        return _json(adjustment_json(entry, active=False))
