"""Parse /metrics bodies into comparable sample maps (both text formats)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

Key = tuple[str, tuple[tuple[str, str], ...]]


def _samples(samples: Iterable[Sample]) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for s in samples:
        key = (s.name, tuple(sorted(s.labels.items())))
        assert key not in out, f"duplicate sample {key}"
        out[key] = s.value
    return out


def parse_text(body: bytes) -> dict[Key, float]:
    families = text_string_to_metric_families(body.decode())
    return _samples(s for family in families for s in family.samples)


def parse_openmetrics(body: bytes) -> dict[Key, float]:
    families = om_families(body.decode())
    return _samples(s for family in families for s in family.samples)
