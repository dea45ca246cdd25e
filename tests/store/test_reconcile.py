"""ctid's talk time against Asterisk's CDRs, per the rules in ctid/store/reconcile.py."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from ctid.ami.events import CdrWritten
from ctid.replay import replay_streams
from ctid.store.capture import cdr_events
from ctid.store.queries import load_calls_by_id, load_cdrs
from ctid.store.reconcile import CallDrift, CdrRecord, Status, reconcile
from ctid.store.rows import cdr_row, pbx_utc_offset
from ctid.tracker.endpoints import EndpointDirectory
from ctid.tracker.model import Call
from tests.store.support import migrated, store_capture
from tests.truth import capture_names, capture_streams

DIRECTORY = EndpointDirectory()


def record(pbx: str, cdr: CdrWritten) -> CdrRecord:
    """A Cdr event as the store reads it back (via the row, so times are converted)."""
    values = cdr_row(pbx, cdr).values
    return CdrRecord(
        pbx=pbx,
        linkedid=values["linkedid"],
        uniqueid=cdr.uniqueid,
        channel=cdr.channel,
        dest_channel=cdr.dest_channel,
        disposition=cdr.disposition,
        billsec=cdr.billsec,
        duration=cdr.duration,
        posted_at=cdr.ts,
        answered_at=values["answered_at"],
    )


def reconciled(name: str) -> list[CallDrift]:
    streams = capture_streams(name)
    calls = [c for c in replay_streams(streams).calls if c.ended_at is not None]
    cdrs = [record("pbx", cdr) for data in streams for cdr in cdr_events(data)]
    return reconcile(calls, cdrs, DIRECTORY)


def only(name: str) -> CallDrift:
    (result,) = reconciled(name)
    return result


def test_queue_call_billsec_holds_the_queue_wait() -> None:
    result = only("inbound_queue_answered")
    assert result.billsec == 19
    assert result.raw_drift == pytest.approx(4.0, abs=0.01)
    assert result.ring_seconds == pytest.approx(3.6, abs=0.1)  # answered 10:35:25, bridged :29.1
    assert abs(result.drift) < 1
    assert (result.status, result.reasons) == (Status.EXPLAINED, ("ring",))


def test_blind_transfer_second_cdr_holds_the_targets_ring_time() -> None:
    result = only("blind_transfer")
    assert (result.billsec, result.cdrs) == (8 + 13, 2)
    assert result.raw_drift == pytest.approx(3.0, abs=0.01)
    assert (result.status, result.reasons) == (Status.EXPLAINED, ("ring",))
    assert result.tolerance == 3.0  # two truncated billsecs


def test_hold_is_billed_by_asterisk_but_is_not_talk() -> None:
    result = only("hold_mid_call")
    assert result.billsec == 28
    assert result.hold_seconds == pytest.approx(12.0, abs=0.05)
    assert result.ring_seconds == 0.0
    assert (result.status, result.reasons) == (Status.EXPLAINED, ("hold",))
    assert abs(result.drift) < 0.1


def test_click_to_call_billsec_holds_the_customers_ring_time() -> None:
    result = only("click_to_call_originate")
    assert result.billsec == 19
    assert result.raw_drift == pytest.approx(4.0, abs=0.05)
    assert (result.status, result.reasons) == (Status.EXPLAINED, ("ring",))


def test_plain_outbound_call_matches_within_truncation() -> None:
    result = only("answered_customer_hangup")
    assert (result.status, result.ring_seconds) == (Status.MATCH, 0.0)
    assert -1 < result.drift <= 0


def test_conference_cdrs_carry_the_seats_linkedids_and_still_match() -> None:
    result = only("conference")
    assert (result.billsec, result.status) == (19 + 20, Status.MATCH)


def test_a_killed_pbx_writes_no_cdr() -> None:
    killed, after = reconciled("pbx_crash_mid_call")
    assert (killed.status, killed.reasons) == (Status.NO_CDR, ("interrupted",))
    assert after.status is Status.MATCH


@pytest.mark.parametrize("name", ["fax_send", "fax_receive", "no_answer", "busy"])
def test_calls_nobody_talked_in_agree_with_their_cdrs(name: str) -> None:
    result = only(name)
    assert result.status is Status.NO_TALK
    assert not result.flagged


@pytest.mark.parametrize("name", capture_names())
def test_no_capture_has_unexplained_drift(name: str) -> None:
    flagged = [r for r in reconciled(name) if r.flagged]
    assert flagged == []


def test_billsec_beyond_the_rules_is_flagged() -> None:
    streams = capture_streams("answered_customer_hangup")
    calls = [c for c in replay_streams(streams).calls if c.ended_at]
    (cdr,) = [record("pbx", c) for c in cdr_events(streams[0])]
    inflated = dataclasses.replace(cdr, billsec=cdr.billsec + 5)
    (result,) = reconcile(calls, [inflated], DIRECTORY)
    assert result.status is Status.DRIFT
    assert result.flagged
    assert result.drift == pytest.approx(5.0, abs=1)


def test_a_trunk_call_only_the_cdrs_know_is_reported_missed() -> None:
    streams = capture_streams("answered_customer_hangup")
    cdrs = [record("pbx", c) for c in cdr_events(streams[0])]
    (result,) = reconcile([], cdrs, DIRECTORY)
    assert (result.status, result.billsec, result.flagged) == (Status.MISSED, 12, True)


def test_seat_to_seat_cdrs_are_not_customer_calls() -> None:
    assert reconciled("internal_call") == []


def test_reconcile_from_the_store_gives_the_same_answer(sqlite_url: str) -> None:
    with migrated(sqlite_url) as engine:
        replay = store_capture(engine, "blind_transfer", "pbx")
        ids = [c.linkedid for c in replay.calls]
        with engine.connect() as connection:
            calls: list[Call] = load_calls_by_id(connection, "pbx", ids)
            cdrs = load_cdrs(connection, "pbx", ids)
    (stored,) = reconcile(calls, cdrs, DIRECTORY)
    assert stored == only("blind_transfer")


@pytest.mark.parametrize(
    ("end_time", "posted_at", "offset"),
    [
        ("2026-11-23 10:35:44", 1795430144.12, 0),  # the lab PBX runs on UTC
        ("2026-11-23 18:35:44", 1795430144.12, 8 * 3600),  # Asia/Shanghai
        ("2026-11-23 16:05:44", 1795430144.12, 5.5 * 3600),  # India
        ("2026-11-23 10:35:40", 1795430144.12, 0),  # posted a few seconds late
        ("", 1795430144.12, None),
    ],
)
def test_cdr_wall_clock_is_turned_into_utc(
    end_time: str, posted_at: float, offset: float | None
) -> None:
    assert pbx_utc_offset(end_time, posted_at) == offset


def test_cdr_times_are_stored_as_utc_instants() -> None:
    (cdr,) = cdr_events(capture_streams("answered_customer_hangup")[0])
    values = cdr_row("pbx", cdr).values
    assert values["answered_at"] == dt.datetime(2026, 11, 23, 10, 30, 20, tzinfo=dt.UTC).timestamp()
    assert values["seq"] == "0"  # cdr_manager's Sequence
    assert values["billsec"] == 12
