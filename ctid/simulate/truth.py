"""The truth of a simulation, from its plan and the templates' truth (no frame is read).

Its ``expected`` part has the shape of the recordings' ``truth.json`` (``per_seat`` and
``per_call``), so one comparison serves both.  Each call adds its template's seconds; extra
talk adds to what was going on at the cut (talk for a talking seat, hold for a held one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ctid.simulate.compile import SlotKind
from ctid.simulate.plan import PlannedCall, SimulationSpec, seat_ids
from ctid.simulate.render import Renamer
from ctid.simulate.template import TemplateSet

COUNTS = ("calls_placed", "internal_calls_placed", "inbound_answered", "answered")
SECONDS = ("talk_seconds", "hold_seconds", "internal_talk_seconds", "cdr_billsec_total")


def simulation_truth(
    spec: SimulationSpec, templates: TemplateSet, plan: Sequence[PlannedCall]
) -> dict[str, Any]:
    per_seat: dict[str, dict[str, float]] = {
        seat: dict.fromkeys(COUNTS + SECONDS, 0) for seat in seat_ids(spec.seats)
    }
    per_call: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for call in plan:
        template = templates[call.template]
        renamer = Renamer(template, call)
        for recorded, seat in renamer.seats.items():
            source, row = template.per_seat[recorded], per_seat[seat]
            for key in COUNTS:
                row[key] += source[key]
            for key in SECONDS:
                row[key] += source[key] + source["extend"][key] * call.extra
        per_call.extend(_call_entry(entry, renamer) for entry in template.per_call)
        calls.append(
            {
                "template": call.template,
                "seats": list(call.seats),
                "start": round(template.start + call.shift, 6),
                "end": round(template.moved(template.end, call.shift, call.extra), 6),
                "extra_talk_seconds": call.extra,
                "linkedid": _first_linkedid(renamer),
            }
        )
    for row in per_seat.values():
        for key in SECONDS:
            row[key] = round(row[key], 6)
    return {
        "generator": "ctid simulate",
        "spec": {
            "seats": spec.seats,
            "start": spec.start,
            "seed": spec.seed,
            "calls_per_seat_hour": spec.calls_per_seat_hour,
            "duration_seconds": spec.duration,
            "extra_talk_seconds": list(spec.extra_talk),
            "mix": dict(spec.mix),
        },
        "calls": calls,
        "expected": {"per_seat": per_seat, "per_call": per_call},
    }


def _call_entry(entry: Any, r: Renamer) -> dict[str, Any]:
    call, template = r.call, r.template
    segments = []
    for segment in entry["segments"]:
        extend = segment["extend"]
        segments.append(
            {
                "seat": r.seats[segment["seat"]],
                "seat_channel": r.channel(segment["seat_channel"]),
                "ext_channel": r.channel(segment["ext_channel"]),
                "talk_seconds": round(
                    segment["talk_seconds"] + extend["talk_seconds"] * call.extra, 6
                ),
                "hold_seconds": round(
                    segment["hold_seconds"] + extend["hold_seconds"] * call.extra, 6
                ),
                "start": round(template.moved(segment["start"], call.shift, call.extra), 3),
                "end": round(template.moved(segment["end"], call.shift, call.extra), 3),
            }
        )
    return {
        "linkedid": r.uid(entry["linkedid"]),
        "direction": entry["direction"],
        "number": call.number or entry["number"],
        "disposition": entry["disposition"],
        "cdr_dispositions": list(entry["cdr_dispositions"]),
        "segments": segments,
    }


def _first_linkedid(r: Renamer) -> str:
    """The linkedid of the call's first channel (the recording's smallest uniqueid)."""
    template = r.template
    first = min(
        (s.text for s in template.compiled.slots if s.kind is SlotKind.UID),
        key=lambda text: int(text.rsplit(".", 1)[1]),
    )
    return r.uid(first)
