"""The shipped call templates: a recorded call, compiled, with its truth per recorded seat."""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from ctid.ami.capture import RecordedFrame, parse_capture
from ctid.errors import InputError
from ctid.simulate.compile import CompiledTemplate, SlotKind, Vocabulary, compile_frames


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    seats: tuple[str, ...]
    """Recorded seats; the first is the one whose call it is (placed or answered it)."""
    seat_names: Mapping[str, str]
    seat_spans: Mapping[str, tuple[float, float]]
    """When each recorded seat is busy with this call (its first and last frame)."""
    number: str | None
    customer_name: str
    start: float
    end: float
    cut: int | None
    """The whole second inside the talk where extra talk is inserted; None: not extendable."""
    per_seat: Mapping[str, Any]
    per_call: tuple[Mapping[str, Any], ...]
    compiled: CompiledTemplate
    uid_floor: int
    uid_span: int
    suffix_floor: int
    suffix_span: int

    def moved(self, at: float, shift: int, extra: int) -> float:
        """Where a template time lands in a call shifted by ``shift`` with ``extra`` talk."""
        return at + shift + (extra if self.cut is not None and at >= self.cut else 0)


@dataclass(frozen=True, slots=True)
class Preamble:
    """What a PBX sends before any call: banner, login response, ``FullyBooted``."""

    banner: bytes
    login_response: bytes
    fully_booted: RecordedFrame


@dataclass(frozen=True, slots=True)
class TemplateSet:
    preamble: Preamble
    templates: Mapping[str, Template]

    def __getitem__(self, name: str) -> Template:
        return self.templates[name]


def template_from(name: str, recording: bytes, meta: Mapping[str, Any]) -> Template:
    capture = parse_capture(recording, name=name)
    customer = meta.get("customer") or {}
    words = Vocabulary(
        seats=meta["seats"],
        names=[meta["seat_names"][s] for s in meta["seats"]],
        number=customer.get("number"),
        customer_name=customer.get("name"),
        cut=meta["extend_at"],
    )
    compiled = compile_frames([f.raw for f in capture.events[1:]], words)
    uids = [int(s.text.rsplit(".", 1)[1]) for s in compiled.slots if s.kind is SlotKind.UID]
    suffixes = [int(s.text, 16) for s in compiled.slots if s.kind is SlotKind.SUFFIX]
    return Template(
        name=name,
        seats=tuple(meta["seats"]),
        seat_names=dict(meta["seat_names"]),
        seat_spans={s: (span[0], span[1]) for s, span in meta["seat_spans"].items()},
        number=customer.get("number"),
        customer_name=customer.get("name", ""),
        start=meta["start"],
        end=meta["end"],
        cut=meta["extend_at"],
        per_seat=meta["per_seat"],
        per_call=tuple(meta["per_call"]),
        compiled=compiled,
        uid_floor=min(uids),
        uid_span=max(uids) - min(uids) + 1,
        suffix_floor=min(suffixes),
        suffix_span=max(suffixes) - min(suffixes) + 1,
    )


def preamble_from(recording: bytes) -> Preamble:
    capture = parse_capture(recording)
    return Preamble(capture.banner, capture.login_response, capture.events[0])


@functools.cache
def bundled_templates() -> TemplateSet:
    """The templates shipped in ``ctid/simulate/templates`` (loaded once)."""
    return load_templates(resources.files("ctid.simulate") / "templates")


def load_templates(directory: Traversable) -> TemplateSet:
    templates: dict[str, Template] = {}
    preamble: Preamble | None = None
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        name = entry.name.removesuffix(".json")
        try:
            meta = json.loads(entry.read_text(encoding="utf-8"))
            recording = gzip.decompress(directory.joinpath(f"{name}.ami.gz").read_bytes())
        except (OSError, ValueError, EOFError) as err:
            raise InputError(f"simulator template {name}: {err}") from err
        templates[name] = template_from(name, recording, meta)
        preamble = preamble or preamble_from(recording)
    if preamble is None:
        raise InputError(f"no simulator templates in {directory}")
    return TemplateSet(preamble, templates)
