"""Do-not-call administration for the HTTP API: check, add, remove and import numbers.

The routes (``/api/dnc``, in :mod:`ctid.api`) validate the request and call these; each answers
``(status, JSON body)``.  Changes go through the guard's :class:`~.optout.OptOutList`, the
same path as a dialplan ``CtidOptOut``: honoured from the next event on, journalled by the
compliance service's timer in a worker thread.  Numbers are normalised to E.164 with the
policy's ``default_region``; answers and logs carry them masked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any, Protocol

import phonenumbers
import structlog
from pydantic import BaseModel, ConfigDict, Field

from ctid.compliance.numbers import is_phone_number, normalise
from ctid.compliance.optout import CsvError, Listing, csv_numbers
from ctid.privacy import mask_number

if TYPE_CHECKING:
    from ctid.compliance.service import ComplianceService

log = structlog.get_logger("ctid.compliance")

MAX_IMPORT_BYTES = 4 * 1024 * 1024
"""An import body: about 250 000 numbers (some 20 s of parsing); split bigger lists."""
LISTED_INVALID = 100
"""Line numbers of invalid rows given back at most (the count is always complete)."""
IMPORT_CHUNK = 5000
"""Numbers added between two yields to the event loop."""
NO_COMPLIANCE = "no compliance policy loaded: set compliance"

Answer = tuple[int, dict[str, Any]]


class ComplianceHost(Protocol):
    """What the routes act on (:class:`ctid.floor.Floor` fits)."""

    @property
    def compliance(self) -> ComplianceService | None: ...


class OptOutChange(BaseModel):
    """Who asks and why; both optional, both kept in the opt-out journal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    who: str | None = Field(default=None, min_length=1, max_length=128)
    reason: str | None = Field(default=None, min_length=1, max_length=1000)

    @property
    def source(self) -> str:
        return "http" if self.who is None else f"http:{self.who}"


class NewOptOut(OptOutChange):
    number: str = Field(min_length=1, max_length=32)


class _Refusal(Exception):  # noqa: N818 - an answer to the caller, not an error of ours
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.answer: Answer = (status, {"error": message})


def check(host: ComplianceHost, number: str) -> Answer:
    """Whether ``number`` is listed, since when and by whom."""
    try:
        service = _service(host)
        e164 = _e164(service, number)
    except _Refusal as refusal:
        return refusal.answer
    listing = service.guard.optouts.listing(e164)
    return 200, _described(e164, listing)


def add(host: ComplianceHost, new: NewOptOut, now: float) -> Answer:
    """201 when added; 200 with ``added: false`` when it was listed already."""
    try:
        service = _service(host)
        e164 = _e164(service, new.number)
    except _Refusal as refusal:
        return refusal.answer
    optouts = service.guard.optouts
    added = optouts.add_e164(e164, now, new.source, new.reason)
    return (201 if added else 200), {"added": added, **_described(e164, optouts.listing(e164))}


def remove(host: ComplianceHost, number: str, change: OptOutChange, now: float) -> Answer:
    """200 when removed; 404 when the number was not listed."""
    try:
        service = _service(host)
        e164 = _e164(service, number)
    except _Refusal as refusal:
        return refusal.answer
    if not service.guard.optouts.remove(e164, now, change.source, change.reason):
        return 404, {"error": f"{mask_number(e164)} is not on the do-not-call list"}
    return 200, {"number": mask_number(e164), "removed": True}


async def import_csv(host: ComplianceHost, body: bytes, change: OptOutChange, now: float) -> Answer:
    """Add every valid number of a CSV body (a ``number`` column); count what was not added."""
    try:
        service = _service(host)
        text = _text(body)
        region = service.settings.default_region
        # Parsing a few hundred thousand numbers takes seconds: not on the event loop.
        numbers, invalid = await asyncio.to_thread(_parse, text, region)
    except _Refusal as refusal:
        return refusal.answer
    except CsvError as err:
        return 400, {"error": str(err)}
    optouts = service.guard.optouts
    added = 0
    for index, e164 in enumerate(numbers, 1):
        added += optouts.add_e164(e164, now, change.source, change.reason)
        if index % IMPORT_CHUNK == 0:
            await asyncio.sleep(0)  # let calls be decided between chunks
    counts = {"added": added, "already": len(numbers) - added, "invalid": len(invalid)}
    log.info("dnc_imported", source=change.source, **counts)
    return 200, {**counts, "invalid_lines": invalid[:LISTED_INVALID]}


def _service(host: ComplianceHost) -> ComplianceService:
    service = host.compliance
    if service is None:
        raise _Refusal(409, NO_COMPLIANCE)
    return service


def _e164(service: ComplianceService, number: str) -> str:
    region = service.settings.default_region
    if not is_phone_number(number, region):
        raise _Refusal(400, f"number: not a phone number (default region {region})")
    return normalise(number, region)


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _Refusal(400, f"body: not UTF-8 text (byte {err.start})") from None


def _parse(text: str, region: str) -> tuple[list[str], list[int]]:
    """(E.164 numbers of the valid rows, line numbers of the invalid ones).

    What :func:`is_phone_number` and :func:`normalise` do, with one parse per row (~90 µs)
    and without their cache: a big list must not push the dialled numbers out of it.
    """
    numbers: list[str] = []
    invalid: list[int] = []
    for line, _, value in csv_numbers(text):
        try:
            parsed = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is not None and phonenumbers.is_possible_number(parsed):
            numbers.append(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
        else:
            invalid.append(line)
    return numbers, invalid


def _described(e164: str, listing: Listing | None) -> dict[str, Any]:
    if listing is None:
        return {"number": mask_number(e164), "listed": False}
    since = dt.datetime.fromtimestamp(listing.since, dt.UTC).isoformat(timespec="seconds")
    return {
        "number": mask_number(e164),
        "listed": True,
        "since": since,
        "source": listing.source,
        "reason": listing.reason,
    }
