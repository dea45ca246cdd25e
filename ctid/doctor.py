"""``ctid doctor``: check a PBX's AMI set-up the way ctid needs it, one line per finding.

It logs in with the configured settings, asks what it may do (``ListCommands``), which
endpoints exist (``PJSIPShowEndpoints``), pings for the PBX clock, then listens for a few
seconds to see whether events carry timestamps and whether noise is filtered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ctid.ami.client import AmiSession
from ctid.ami.codec import Message
from ctid.config import PbxSettings, Settings
from ctid.errors import AmiError
from ctid.pbx_link import client_for

NOISE_EVENTS = frozenset({"VarSet", "Newexten", "RTCPSent", "RTCPReceived", "CEL"})
ENFORCEMENT_ACTIONS = ("Hangup", "Redirect")
MAX_SKEW_S = 2.0


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    ok: bool | None
    """True passed, False failed, None could not tell."""
    detail: str
    hint: str = ""

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "??  "}[self.ok]
        hint = f" -> {self.hint}" if self.hint and self.ok is not True else ""
        return f"[{mark}] {self.check}: {self.detail}{hint}"


@dataclass
class Observation:
    """What one doctor session saw on the wire."""

    logged_in: bool = False
    error: str | None = None
    login_refused: bool = False
    commands: set[str] = field(default_factory=set)
    endpoints: set[str] | None = None
    skew: float | None = None
    events: list[Message] = field(default_factory=list)


async def observe(pbx: PbxSettings, *, listen: float = 3.0, patience: float = 5.0) -> Observation:
    seen = Observation()
    done = asyncio.Event()

    async def inspect(session: AmiSession) -> None:
        seen.logged_in = True
        sent = time.time()
        pong = await session.send_action("Ping")
        stamp = pong.get("Timestamp")
        if stamp:
            seen.skew = float(stamp) - (sent + time.time()) / 2
        commands = await session.send_action("ListCommands")
        if commands.name.lower() == "success":
            seen.commands = set(commands.headers) - {"Response", "ActionID", "Message"}
        with contextlib.suppress(AmiError):
            items = await session.send_list_action("PJSIPShowEndpoints")
            seen.endpoints = {i.get("ObjectName") or "" for i in items} - {""}
        await asyncio.sleep(listen)
        done.set()

    client = client_for(
        pbx,
        on_messages=lambda batch, _at: seen.events.extend(batch),
        on_connected=inspect,
        connect_timeout=patience,
        action_timeout=patience,
        backoff_initial=listen + patience,  # one attempt is enough to judge
    )
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(done.wait(), timeout=listen + 3 * patience)
    except TimeoutError:
        pass
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    seen.error = client.last_error
    seen.login_refused = "refused" in (client.last_error or "") and not seen.logged_in
    return seen


def judge(pbx: PbxSettings, settings: Settings, seen: Observation) -> list[Finding]:
    """Pure: findings from an observation."""
    where = f"{pbx.host}:{pbx.port}"
    if not seen.logged_in:
        if seen.login_refused:
            return [
                Finding("AMI reachable", True, where),
                Finding(
                    "login",
                    False,
                    f"user {pbx.username!r} refused",
                    "check username/secret in manager.conf and its permit/deny lines",
                ),
            ]
        return [
            Finding(
                "AMI reachable",
                False,
                f"{where}: {seen.error or 'no answer'}",
                "check [general] enabled/bindaddr/port in manager.conf and the firewall",
            )
        ]
    findings = [Finding("AMI reachable", True, where), Finding("login", True, pbx.username)]
    findings.append(_privileges(seen))
    findings.append(_timestamps(seen.events))
    findings.append(_noise(seen.events))
    findings.append(_skew(seen.skew))
    findings.extend(_endpoints(pbx, settings, seen.endpoints))
    return findings


def _privileges(seen: Observation) -> Finding:
    missing = [a for a in ("CoreShowChannels", *ENFORCEMENT_ACTIONS) if a not in seen.commands]
    if not missing:
        return Finding("write privileges", True, "resync and enforcement actions allowed")
    return Finding(
        "write privileges",
        False,
        f"not allowed: {', '.join(missing)}",
        "set write = call,reporting for the ctid user (deploy/asterisk/manager.conf)",
    )


def _timestamps(events: Sequence[Message]) -> Finding:
    timed = [e for e in events if e.name != "FullyBooted"]
    if not timed:
        return Finding("timestampevents", None, "no event arrived while listening")
    if all("Timestamp" in e.headers for e in timed):
        return Finding("timestampevents", True, f"{len(timed)} events carry Timestamp")
    return Finding(
        "timestampevents",
        False,
        "events arrive without Timestamp",
        "set timestampevents = yes in [general] of manager.conf and reload manager",
    )


def _noise(events: Sequence[Message]) -> Finding:
    noise = sum(1 for e in events if e.name in NOISE_EVENTS)
    if not events:
        return Finding("event filter", None, "no event arrived while listening")
    if noise == 0:
        return Finding("event filter", True, f"no noise among {len(events)} events")
    return Finding(
        "event filter",
        False,
        f"{noise} of {len(events)} events are noise ctid drops (VarSet, CEL, RTCP...)",
        "add the eventfilter lines of deploy/asterisk/manager.conf",
    )


def _skew(skew: float | None) -> Finding:
    if skew is None:
        return Finding("clock skew", None, "Ping answer had no Timestamp")
    ok = abs(skew) <= MAX_SKEW_S
    return Finding(
        "clock skew", ok, f"PBX clock {skew:+.3f} s from ours", "sync both hosts with NTP"
    )


def _endpoints(pbx: PbxSettings, settings: Settings, known: set[str] | None) -> list[Finding]:
    if known is None:
        return [Finding("endpoints", None, "PJSIPShowEndpoints not answered")]
    wanted = {ep for seat in settings.seats for ep in seat.endpoint_names()}
    missing_seats = sorted(wanted - known)
    missing_trunks = sorted(set(pbx.trunks) - known)
    return [
        Finding(
            "seats known to the PBX",
            not missing_seats,
            f"missing: {', '.join(missing_seats)}" if missing_seats else f"{len(wanted)} seats",
            "fix [[seats]] endpoints in the ctid config or pjsip.conf",
        ),
        Finding(
            "trunks known to the PBX",
            not missing_trunks,
            f"missing: {', '.join(missing_trunks)}" if missing_trunks else f"{len(pbx.trunks)}",
            "fix trunks in the [[pbx]] section",
        ),
    ]


async def run_doctor(settings: Settings, *, listen: float = 3.0) -> list[Finding]:
    from ctid.doctor_services import check_mqtt, check_store

    findings = [await check_store(settings.store), await check_mqtt(settings.mqtt)]
    for pbx in settings.pbx:
        seen = await observe(pbx, listen=listen)
        findings.extend(
            Finding(f"{pbx.name}: {f.check}", f.ok, f.detail, f.hint)
            for f in judge(pbx, settings, seen)
        )
    return findings
