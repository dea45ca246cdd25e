"""Build the simulator's templates from recorded captures and their ground truth.

    python -m ctid.simulate.make_templates tests/captures ctid/simulate/templates

For each scenario it writes ``NAME.ami.gz`` (the recording without the frames of other AMI
logins: banner, login response, ``FullyBooted``, then the call's own events) and ``NAME.json``
(the truth of the call in terms of its recorded seats, to the microsecond, and the *cut*: a
whole second inside the talk where simulated calls insert their extra talk time).  A
maintainer's tool: ctid itself only reads what it wrote.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from ctid.ami.capture import Capture, RecordedFrame, load_capture
from ctid.simulate import analysis
from ctid.simulate.compile import header_role
from ctid.simulate.frames import CRLF, headers_of, is_seat_channel, parse_datetime, seat_of

SCENARIOS = (
    "answered_customer_hangup",
    "answered_seat_hangup",
    "short_answered",
    "hold_mid_call",
    "no_answer",
    "busy",
    "congestion",
    "inbound_queue_answered",
    "inbound_queue_abandoned",
    "internal_call",
    "blind_transfer",
    "fax_receive",
)
AGREEMENT_S = 0.0015
"""How closely the microsecond measurement must match the millisecond truth."""
CUT_CLEARANCE_S = 0.3
"""No frame may lie this close to the cut, so no event straddles it."""
_LAB_SEAT = re.compile(r"(?<![0-9])10(?:0[1-9]|10)(?![0-9])")


def build(name: str, captures: Path) -> tuple[bytes, dict[str, Any]]:
    capture = load_capture(_find(captures, name, ".ami"))
    truth = json.loads(_read(_find(captures, name, ".truth.json")))
    kept = [f for f in capture.events if headers_of(f.raw).get("Service") != "AMI"]
    if not kept or headers_of(kept[0].raw).get("Event") != "FullyBooted":
        raise ValueError(f"{name}: the recording does not start with FullyBooted")
    call = kept[1:]
    events = [(_ts(f), headers_of(f.raw)) for f in call]
    found = analysis.intervals(events)
    measured = analysis.totals(found)
    per_call = [_call_truth(name, entry, measured) for entry in truth["expected"]["per_call"]]
    seats = _seats(call, truth)
    cut = _cut(found, [ts for ts, _ in events])
    at_cut = analysis.state_at(found, cut) if cut is not None else {}
    for entry in per_call:
        for segment in entry["segments"]:
            state = at_cut.get((segment["seat_channel"], segment["ext_channel"]))
            segment["extend"] = {
                "talk_seconds": int(state == "talk"),
                "hold_seconds": int(state == "hold"),
            }
    per_seat = _seat_truth(name, seats, truth, per_call, found, at_cut, events, cut)
    first, last = events[0][0], events[-1][0]
    meta: dict[str, Any] = {
        "name": name,
        "source": f"{name}.ami, {truth.get('asterisk_version', 'Asterisk 22')} lab recording",
        "description": truth.get("description", ""),
        "seats": seats,
        "seat_names": {s: truth["seats"][s]["name"] for s in seats},
        "seat_spans": {s: _span(s, events) for s in seats},
        "customer": _customer(per_call, events),
        "start": first,
        "end": last,
        "extend_at": cut,
        "per_seat": per_seat,
        "per_call": per_call,
    }
    trimmed = Capture(capture.banner, capture.login_response, kept, name)
    return trimmed.to_bytes(), meta


def _find(directory: Path, name: str, suffix: str) -> Path:
    for candidate in (directory / f"{name}{suffix}.gz", directory / f"{name}{suffix}"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{name}{suffix}(.gz) not in {directory}")


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def _ts(frame: RecordedFrame) -> float:
    if frame.timestamp is None:
        raise ValueError(f"call frame without a Timestamp: {frame.raw[:60]!r}")
    return frame.timestamp


def _seats(call: list[RecordedFrame], truth: dict[str, Any]) -> list[str]:
    """Every lab seat the call's identity headers name; the one that placed/answered first."""
    seen: set[str] = set()
    for frame in call:
        headers = headers_of(frame.raw)
        event, variable = headers.get("Event", ""), headers.get("Variable", "")
        for line in frame.raw.decode().split(CRLF):
            key, _, value = line.partition(":")
            if header_role(event, variable, key) == "identity":
                seen.update(_LAB_SEAT.findall(value))
    primary = truth["calls"][0].get("seat")
    rest = sorted(seen - {primary})
    return [primary, *rest] if primary in seen else rest


def _call_truth(
    name: str, entry: dict[str, Any], measured: dict[analysis.Key, tuple[float, float]]
) -> dict[str, Any]:
    segments = []
    for segment in entry["segments"]:
        talk, hold = measured.get((segment["seat_channel"], segment["ext_channel"]), (0.0, 0.0))
        _agree(name, segment["seat_channel"], talk, segment["talk_seconds"])
        _agree(name, segment["seat_channel"], hold, segment["hold_seconds"])
        segments.append({**segment, "talk_seconds": round(talk, 6), "hold_seconds": round(hold, 6)})
    known = {(s["seat_channel"], s["ext_channel"]) for s in entry["segments"]}
    for key in measured:
        if key[1] and key[0] in {k[0] for k in known} and key not in known:
            raise ValueError(f"{name}: talk between {key} that the truth does not list")
    keep = ("linkedid", "direction", "number", "disposition", "cdr_dispositions")
    return {**{k: entry[k] for k in keep}, "segments": segments}


def _seat_truth(
    name: str,
    seats: list[str],
    truth: dict[str, Any],
    per_call: list[dict[str, Any]],
    found: list[analysis.Interval],
    at_cut: dict[analysis.Key, str],
    events: list[tuple[float, dict[str, str]]],
    cut: int | None,
) -> dict[str, Any]:
    internal = analysis.totals([i for i in found if not i.key[1]])
    billsec, billsec_growth = _cdr_billsec(events, cut)
    out: dict[str, Any] = {}
    for seat in seats:
        want = truth["expected"]["per_seat"].get(seat, {})
        segments = [s for c in per_call for s in c["segments"] if s["seat"] == seat]
        talk = sum(s["talk_seconds"] for s in segments)
        hold = sum(s["hold_seconds"] for s in segments)
        own = sum(t for (chan, _), (t, _) in internal.items() if seat_of(chan) == seat)
        _agree(name, seat, talk, want.get("talk_seconds", 0.0))
        _agree(name, seat, hold, want.get("hold_seconds", 0.0))
        _agree(name, seat, own, want.get("internal_talk_seconds", 0.0))
        if billsec.get(seat, 0) != want.get("cdr_billsec_total", 0):
            raise ValueError(f"{name}: {seat} billsec {billsec.get(seat)} differs from the truth")
        out[seat] = {
            **{k: want.get(k, 0) for k in _COUNTS},
            "talk_seconds": round(talk, 6),
            "hold_seconds": round(hold, 6),
            "internal_talk_seconds": round(own, 6),
            "cdr_billsec_total": billsec.get(seat, 0),
            "extend": {
                "talk_seconds": sum(s["extend"]["talk_seconds"] for s in segments),
                "hold_seconds": sum(s["extend"]["hold_seconds"] for s in segments),
                "internal_talk_seconds": sum(
                    1 for (chan, ext), st in at_cut.items() if not ext and seat_of(chan) == seat
                ),
                "cdr_billsec_total": billsec_growth.get(seat, 0),
            },
        }
    return out


_COUNTS = ("calls_placed", "internal_calls_placed", "inbound_answered", "answered")


def _agree(name: str, what: str, measured: float, truth: float) -> None:
    if abs(measured - truth) > AGREEMENT_S:
        raise ValueError(f"{name}: {what} measured {measured:.6f} s, truth says {truth} s")


def _cut(found: list[analysis.Interval], stamps: list[float]) -> int | None:
    """The first whole second well inside a talk interval with no frame close to it."""
    for interval in sorted(found, key=lambda i: i.start):
        if interval.state != "talk":
            continue
        for second in range(math.ceil(interval.start + 1), math.floor(interval.end - 1) + 1):
            if all(abs(ts - second) > CUT_CLEARANCE_S for ts in stamps):
                return second
    return None


def _cdr_billsec(
    events: list[tuple[float, dict[str, str]]], cut: int | None
) -> tuple[dict[str, int], dict[str, int]]:
    """Per seat: billsec of seat↔carrier CDRs, and how many of them span the cut."""
    total: dict[str, int] = {}
    growth: dict[str, int] = {}
    for _, h in events:
        if h.get("Event") != "Cdr":
            continue
        channels = [h.get("Channel", ""), h.get("DestinationChannel", "")]
        seats = [seat_of(c) for c in channels if is_seat_channel(c)]
        if len(seats) != 1 or not any(c.startswith("PJSIP/carrier-") for c in channels):
            continue
        seat = seats[0]
        total[seat] = total.get(seat, 0) + int(h["BillableSeconds"])
        answered = h.get("AnswerTime", "")
        if cut is not None and answered:
            spans = parse_datetime(answered) < cut <= parse_datetime(h["EndTime"])
            growth[seat] = growth.get(seat, 0) + int(spans)
    return total, growth


def _span(seat: str, events: list[tuple[float, dict[str, str]]]) -> list[float]:
    """First and last frame naming the seat's phone: when the seat is busy with this call.

    CDRs are left out: a queue member that was rung but not picked is free again when its
    channel hangs up, though the CDR naming that channel comes only at the end of the call.
    """
    device = f"PJSIP/{seat}"
    times = [
        ts
        for ts, h in events
        if h.get("Event") != "Cdr"
        and (
            h.get("AccountID") == seat
            or any(v == device or v.startswith(device + "-") for v in h.values())
        )
    ]
    return [min(times), max(times)]


def _customer(
    per_call: list[dict[str, Any]], events: list[tuple[float, dict[str, str]]]
) -> dict[str, str] | None:
    if not per_call:
        return None
    number = per_call[0]["number"]
    names = {h.get("CallerIDName") for _, h in events if h.get("CallerIDNum") == number}
    names.discard(None)
    names.discard("<unknown>")
    return {"number": number, "name": sorted(n for n in names if n)[0] if names else ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("captures", type=Path, help="directory with NAME.ami(.gz) + truth")
    parser.add_argument("out", type=Path, help="template directory to write")
    parser.add_argument("names", nargs="*", default=list(SCENARIOS), help="scenarios")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        data, meta = build(name, args.captures)
        (args.out / f"{name}.ami.gz").write_bytes(gzip.compress(data, mtime=0))
        text = json.dumps(meta, ensure_ascii=False, indent=1) + "\n"
        (args.out / f"{name}.json").write_text(text, encoding="utf-8")
        print(f"{name}: {len(data)} bytes, cut {meta['extend_at']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
