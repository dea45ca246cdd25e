"""Per-seat gauge families: a fast chunk-cached text renderer and the stock equivalent.

Each family renders one *column*: a list with one value per seat, aligned with a list of
pre-escaped seat label strings (``site="…",team="…",seat="…"``).  Seats are grouped in chunks;
a chunk whose values compare equal to the last scrape's reuses its text, so a scrape formats
only what moved (mostly the talk seconds of seats on a call).

``stock()`` builds the same samples as a prometheus_client ``GaugeMetricFamily``: it is what a
registry would have rendered, and the tests hold the fast output to it sample for sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from ctid.metrics.exposition import escape_help, escape_label_value
from ctid.metrics.quota import QuotaStatus

CHUNK = 64
"""Seats per cached chunk: one seat's change re-renders little, and comparing 64-value slices
costs far less than formatting them."""

SEAT_LABELS = ("site", "team", "seat")
"""Seconds are rendered to the millisecond (``:.3f``): they accrue from microsecond timestamps,
and a short string is cheaper to format and to parse.  The stock twin gets ``round(v, 3)``,
which is the same number."""


class SeatFamily:
    """Base: header, chunk cache and the stock twin; subclasses say how values become lines."""

    label: str = ""
    """The extra label (besides site, team, seat) a subclass adds, if any."""

    def __init__(
        self, name: str, documentation: str, pick: Callable[[Any], Any] | None = None
    ) -> None:
        self.name = name
        self.documentation = documentation
        self._pick = pick
        """Takes this family's value out of a column shared with others (a row of counts, a
        seat status): families that share one column cost one lookup pass per scrape."""
        self._head = f"{name}{{"
        self._headers = {
            om: f"# HELP {name} {escape_help(documentation, openmetrics=om)}\n"
            f"# TYPE {name} gauge\n".encode()
            for om in (False, True)
        }
        self._values: list[Any] = []
        self._chunks: list[bytes] = []
        self._labels: Sequence[str] | None = None

    def render(self, labels: Sequence[str], values: list[Any], *, openmetrics: bool) -> list[bytes]:
        """The family's text, in pieces; ``labels[i]`` is seat ``i``'s label string.

        ``values`` must be a fresh list each scrape (it is kept for the next comparison).
        """
        if labels is not self._labels or len(values) != len(self._values):
            # The seat set changed: nothing cached lines up any more.
            self._labels = labels
            self._values = [_NEVER] * len(values)
            self._chunks = [b""] * ((len(values) + CHUNK - 1) // CHUNK)
        old, chunks = self._values, self._chunks
        if values == old:
            # One comparison in C: most families do not move between two scrapes at all.
            self._values = values
            return [self._headers[openmetrics], *chunks]
        for number, start in enumerate(range(0, len(values), CHUNK)):
            stop = start + CHUNK
            new = values[start:stop]
            if new != old[start:stop]:
                picked = new if self._pick is None else list(map(self._pick, new))
                chunks[number] = self.chunk(labels[start:stop], picked).encode()
        self._values = values
        return [self._headers[openmetrics], *chunks]

    def chunk(self, labels: Sequence[str], values: Sequence[Any]) -> str:
        """The sample lines of a run of seats (one f-string per line, no call per seat: this
        loop is the hot path of a scrape)."""
        raise NotImplementedError

    def stock(self, seats: Sequence[Sequence[str]], values: Sequence[Any]) -> GaugeMetricFamily:
        names = [*SEAT_LABELS, self.label] if self.label else list(SEAT_LABELS)
        family = GaugeMetricFamily(self.name, self.documentation, labels=names)
        pick = self._pick
        for seat, value in zip(seats, values, strict=True):
            for extra, number in self.samples(value if pick is None else pick(value)):
                family.add_metric([*seat, *extra], number)
        return family

    def samples(self, value: Any) -> list[tuple[tuple[str, ...], float]]:
        raise NotImplementedError


class _Never:
    """Compares unequal to everything, so a fresh cache renders every chunk."""

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = None  # type: ignore[assignment]


_NEVER = _Never()


class Scalar(SeatFamily):
    """One sample per seat: a count, or seconds (``seconds=True``: millisecond text)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        *,
        seconds: bool = False,
        pick: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(name, documentation, pick)
        self._seconds = seconds

    def chunk(self, labels: Sequence[str], values: Sequence[Any]) -> str:
        head = self._head
        if self._seconds:
            return "".join([f"{head}{s}}} {v:.3f}\n" for s, v in zip(labels, values, strict=True)])
        return "".join([f"{head}{s}}} {v}\n" for s, v in zip(labels, values, strict=True)])

    def samples(self, value: Any) -> list[tuple[tuple[str, ...], float]]:
        return [((), round(value, 3) if self._seconds else float(value))]


class Fixed(SeatFamily):
    """A tuple of counts per seat, one sample per fixed value of an extra label."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        keys: Sequence[str],
        *,
        pick: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(name, documentation, pick)
        self.label = label
        self._keys = tuple(keys)
        self._extras = tuple(f'{label}="{escape_label_value(key)}"}} ' for key in keys)

    def chunk(self, labels: Sequence[str], values: Sequence[tuple[int, ...]]) -> str:
        head = self._head
        return "".join(
            [
                f"{head}{s},{extra}{count}\n"
                for s, value in zip(labels, values, strict=True)
                for extra, count in zip(self._extras, value, strict=True)
            ]
        )

    def samples(self, value: tuple[int, ...]) -> list[tuple[tuple[str, ...], float]]:
        return [((key,), float(count)) for key, count in zip(self._keys, value, strict=True)]


class Pairs(SeatFamily):
    """A tuple of ``(label value, number)`` per seat: a sparse set of samples (may be empty)."""

    def __init__(self, name: str, documentation: str, label: str) -> None:
        super().__init__(name, documentation)
        self.label = label

    def chunk(self, labels: Sequence[str], values: Sequence[tuple[tuple[str, float], ...]]) -> str:
        head, label, esc = self._head, self.label, escape_label_value
        return "".join(
            [
                f'{head}{s},{label}="{esc(key)}"}} {number!r}\n'
                for s, value in zip(labels, values, strict=True)
                for key, number in value
            ]
        )

    def samples(self, value: tuple[tuple[str, float], ...]) -> list[tuple[tuple[str, ...], float]]:
        return [((key,), float(number)) for key, number in value]


class Enum(SeatFamily):
    """A label value per seat (its current state); one sample of value 1, none for ``""``."""

    def __init__(
        self, name: str, documentation: str, label: str, *, pick: Callable[[Any], Any] | None = None
    ) -> None:
        super().__init__(name, documentation, pick)
        self.label = label

    def chunk(self, labels: Sequence[str], values: Sequence[str]) -> str:
        head, label, esc = self._head, self.label, escape_label_value
        return "".join(
            [
                f'{head}{s},{label}="{esc(v)}"}} 1\n'
                for s, v in zip(labels, values, strict=True)
                if v
            ]
        )

    def samples(self, value: str) -> list[tuple[tuple[str, ...], float]]:
        return [((value,), 1.0)] if value else []


class Quota(SeatFamily):
    """Per seat the provider's sequence of quota statuses; one sample per quota, of ``field``.

    The statuses themselves are the cached values: a provider that hands back the same objects
    for seats whose quota did not move costs one identity check per seat.
    """

    label = "quota"

    def __init__(
        self, name: str, documentation: str, field: Callable[[QuotaStatus], float]
    ) -> None:
        super().__init__(name, documentation)
        self._field = field

    def chunk(self, labels: Sequence[str], values: Sequence[Sequence[QuotaStatus]]) -> str:
        head, field, esc = self._head, self._field, escape_label_value
        return "".join(
            [
                f'{head}{s},quota="{esc(q.quota)}"}} {float(field(q))!r}\n'
                for s, value in zip(labels, values, strict=True)
                for q in value
            ]
        )

    def samples(self, value: Sequence[QuotaStatus]) -> list[tuple[tuple[str, ...], float]]:
        return [((q.quota,), float(self._field(q))) for q in value]
