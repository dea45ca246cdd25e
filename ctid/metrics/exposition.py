"""``/metrics`` rendering that stays cheap with thousands of seats.

prometheus_client builds a ``Metric`` object and a ``Sample`` named tuple per value and then
formats every one of them, every scrape: ~330 ms for 5 000 seats, all of it blocking the event
loop.  Per-seat families are therefore rendered here directly: label strings are escaped once per
seat (the seat/team set changes rarely), seats are grouped in chunks, and a chunk whose values
did not change since the last scrape reuses its rendered text.  Everything else (a few dozen
low-cardinality families) stays in an injected ``CollectorRegistry``, which remains the source of
truth for them and is rendered by prometheus_client itself (see ``seat_families.py`` for the
per-seat side).

Both the Prometheus text format 0.0.4 and OpenMetrics 1.0.0 are served, by ``Accept`` header.
Per-seat families are gauges only (daily values reset at local midnight), for which the two
formats differ in nothing but ``HELP`` escaping and the closing ``# EOF``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Protocol, cast

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest as text_generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_OM_EOF = b"# EOF\n"


def wants_openmetrics(accept: str) -> bool:
    """True when ``Accept`` lists OpenMetrics 1.0.0 (or unversioned) before plain text.

    Like prometheus_client, q-values are not weighed: Prometheus lists its preference first.
    """
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media == "text/plain":
            return False
        if media != "application/openmetrics-text":
            continue
        version = ""
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "version":
                version = value.strip()
        if version in ("", "1.0.0"):
            return True
    return False


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def escape_help(text: str, *, openmetrics: bool) -> str:
    escaped = text.replace("\\", r"\\").replace("\n", r"\n")
    # OpenMetrics escapes double quotes in HELP too; the 0.0.4 format does not.
    return escaped.replace('"', r"\"") if openmetrics else escaped


def label_string(pairs: Iterable[tuple[str, str]]) -> str:
    """``site="x",team="y"``: the inside of a label set, values escaped."""
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs)


Formatting = Callable[[], Iterable[bytes]]
"""Formats a snapshot already taken; touches nothing the event loop changes."""


class FastSource(Protocol):
    """A block of metric families rendered without prometheus_client."""

    def prepare(self, *, openmetrics: bool) -> Formatting:
        """Take the values now (on the event loop); the result formats them, anywhere."""
        ...

    async def prepare_async(self, *, openmetrics: bool) -> Formatting:
        """:meth:`prepare`, free to let the loop run while it reads (large sources)."""
        ...


class Exposition:
    """``render(accept) -> (body, content type)`` for the HTTP handler.

    :meth:`render_async` reads every value on the event loop (the per-seat columns, the
    registry's collectors) and formats the per-seat text in a worker thread, so a scrape of a
    large floor holds the loop only for the reading; the interpreter still switches back to
    the loop every few milliseconds while the thread formats.
    """

    def __init__(self, registry: CollectorRegistry, sources: Iterable[FastSource] = ()) -> None:
        self._registry = registry
        self._sources = list(sources)
        self._formatting = asyncio.Lock()
        """One format at a time: the sources' render caches are not shared between scrapes."""

    def add_source(self, source: FastSource) -> None:
        self._sources.append(source)

    async def render_async(self, accept: str) -> tuple[bytes, str]:
        openmetrics = wants_openmetrics(accept)
        async with self._formatting:
            formatting = [
                await source.prepare_async(openmetrics=openmetrics) for source in self._sources
            ]
            # Collectors read live state: collected on the loop, their samples formatted later
            # (prometheus_client spends most of a scrape formatting, ~25 µs a sample).
            collected = _Collected(list(self._registry.collect()))
            parts = await asyncio.to_thread(self._format, formatting, collected, openmetrics)
        return b"".join(parts), _content_type(openmetrics)

    def render(self, accept: str) -> tuple[bytes, str]:
        openmetrics = wants_openmetrics(accept)
        formatting = [source.prepare(openmetrics=openmetrics) for source in self._sources]
        parts = self._format(formatting, self._registry, openmetrics)
        return b"".join(parts), _content_type(openmetrics)

    @staticmethod
    def _format(
        formatting: list[Formatting], registry: _Registry, openmetrics: bool
    ) -> list[bytes]:
        parts = [piece for format_source in formatting for piece in format_source()]
        if not openmetrics:
            parts.append(text_generate_latest(registry))
            return parts
        # The registry's part ends with the one "# EOF" the whole exposition needs.
        rest = cast(bytes, om_generate_latest(registry))  # type: ignore[no-untyped-call]
        if not rest.endswith(_OM_EOF):  # pragma: no cover - prometheus_client guarantees it
            rest += _OM_EOF
        parts.append(rest)
        return parts


class _Registry(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class _Collected:
    """Metric families collected already: what prometheus_client's formatters iterate."""

    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


def _content_type(openmetrics: bool) -> str:
    return CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT
