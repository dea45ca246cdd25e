"""Small helpers on recorded AMI frames shared by the template builder and the compiler."""

from __future__ import annotations

import calendar
import time

CRLF = "\r\n"
FRAME_END = "\r\n\r\n"
PBX_DATETIME = "%Y-%m-%d %H:%M:%S"
"""How Asterisk writes CEL ``EventTime`` and CDR times: wall clock, whole seconds (the
recording PBX ran in UTC, and so does the simulated one)."""


def headers_of(raw: bytes) -> dict[str, str]:
    """Header dict of one frame; the first of repeated keys wins."""
    headers: dict[str, str] = {}
    for line in raw.decode("utf-8").split(CRLF):
        key, sep, value = line.partition(":")
        if sep and key not in headers:
            headers[key] = value.strip()
    return headers


def parse_datetime(text: str) -> int:
    """``2026-11-23 10:30:16`` (UTC) → epoch seconds."""
    return calendar.timegm(time.strptime(text, PBX_DATETIME))


def format_datetime(epoch: int) -> str:
    return time.strftime(PBX_DATETIME, time.gmtime(epoch))


def is_seat_channel(channel: str) -> bool:
    """``PJSIP/1001-0000002a``: a phone endpoint named by digits (the lab's seats)."""
    tech, _, rest = channel.partition("/")
    endpoint = rest.rsplit("-", 1)[0]
    return tech == "PJSIP" and endpoint.isdigit()


def is_carrier_channel(channel: str) -> bool:
    tech, _, rest = channel.partition("/")
    endpoint = rest.rsplit("-", 1)[0]
    return tech == "PJSIP" and bool(endpoint) and not endpoint.isdigit()


def seat_of(channel: str) -> str:
    return channel.partition("/")[2].rsplit("-", 1)[0]
