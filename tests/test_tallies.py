from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ctid.tracker.model import Call, CallEnded, Direction, InternalCallPlaced, InternalTalk, Segment
from ctid.tracker.tallies import DailyTallies, split_by_local_day

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _ts(text: str, tz: ZoneInfo = SHANGHAI) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def _call(seat: str, start: float, talk: list[tuple[float, float]], **kw: object) -> Call:
    call = Call("pbx", f"id-{start}", Direction.OUTBOUND, start, placed_by=seat)
    segment = Segment(seat, f"PJSIP/{seat}-1", "PJSIP/carrier-1")
    for a, b in talk:
        segment.talk_seconds += b - a
        segment.talk_intervals += ((a, b),)
    call.segments[("s", "e")] = segment
    for key, value in kw.items():
        setattr(call, key, value)
    return call


def test_interval_split_at_local_midnight() -> None:
    start, end = _ts("2026-11-23T23:59:30"), _ts("2026-11-24T00:01:00")
    parts = list(split_by_local_day(start, end, SHANGHAI))
    assert parts == [(dt.date(2026, 11, 23), 30.0), (dt.date(2026, 11, 24), 60.0)]


def test_midnight_split_uses_site_zone_not_utc() -> None:
    # 16:00 UTC is midnight in Shanghai: the same instant splits differently per zone.
    start, end = (
        _ts("2026-11-23T15:59:00", ZoneInfo("UTC")),
        _ts("2026-11-23T16:01:00", ZoneInfo("UTC")),
    )
    assert len(list(split_by_local_day(start, end, SHANGHAI))) == 2
    assert len(list(split_by_local_day(start, end, ZoneInfo("UTC")))) == 1


def test_call_across_midnight_feeds_both_days_and_counts_once() -> None:
    tallies = DailyTallies(SHANGHAI)
    start = _ts("2026-11-23T23:59:00")
    tallies.apply(CallEnded(_call("1001", start, [(start + 20, start + 120)])))
    first, second = (
        tallies.days[dt.date(2026, 11, 23)]["1001"],
        tallies.days[dt.date(2026, 11, 24)]["1001"],
    )
    assert (first.calls, first.talk_seconds) == (1, 40.0)
    assert (second.calls, second.talk_seconds) == (0, 60.0)
    assert tallies.totals()["1001"].talk_seconds == 100.0


def test_effective_call_needs_threshold_talk() -> None:
    tallies = DailyTallies(SHANGHAI, effective_seconds=30)
    t = _ts("2026-11-23T10:00:00")
    tallies.apply(CallEnded(_call("1001", t, [(t, t + 29.9)])))
    tallies.apply(CallEnded(_call("1001", t + 100, [(t + 100, t + 130)])))
    total = tallies.totals()["1001"]
    assert (total.answered, total.effective) == (2, 1)


def test_fax_call_is_never_effective() -> None:
    tallies = DailyTallies(SHANGHAI)
    t = _ts("2026-11-23T10:00:00")
    tallies.apply(CallEnded(_call("1001", t, [(t, t + 90)], fax=True)))
    total = tallies.totals()["1001"]
    assert (total.faxes, total.effective) == (1, 0)


def test_internal_talk_and_calls_are_kept_apart_from_customer_talk() -> None:
    tallies = DailyTallies(SHANGHAI)
    t = _ts("2026-11-23T10:00:00")
    tallies.apply(InternalCallPlaced("pbx", t, "1001", "1002"))
    tallies.apply(InternalTalk("pbx", "1001", t, t + 10))
    total = tallies.totals()["1001"]
    assert (total.internal_calls, total.internal_talk_seconds) == (1, 10.0)
    assert (total.calls, total.talk_seconds) == (0, 0.0)


def test_live_tallies_keep_only_the_newest_days() -> None:
    tallies = DailyTallies(SHANGHAI, keep_days=2)
    first = _ts("2026-11-01T10:00:00")
    for n in range(30):  # a month of calls: one day's seats each day, then only two days kept
        start = first + n * 86_400
        tallies.apply(CallEnded(_call("1001", start, [(start + 5, start + 65)])))
        tallies.apply(InternalCallPlaced("pbx", start + 70, "1002", "1001"))
        assert len(tallies.days) <= 2
    assert sorted(tallies.days) == [dt.date(2026, 11, 29), dt.date(2026, 11, 30)]
    today = tallies.days[dt.date(2026, 11, 30)]
    assert (today["1001"].calls, today["1001"].talk_seconds) == (1, 60.0)
    assert today["1002"].internal_calls == 1


def test_live_tallies_keep_yesterday_for_a_call_across_midnight() -> None:
    tallies = DailyTallies(SHANGHAI, keep_days=2)
    start = _ts("2026-11-23T23:59:00")
    tallies.apply(CallEnded(_call("1001", start, [(start + 20, start + 120)])))
    assert tallies.days[dt.date(2026, 11, 23)]["1001"].talk_seconds == 40.0
    assert tallies.days[dt.date(2026, 11, 24)]["1001"].talk_seconds == 60.0


def test_tallies_for_a_report_keep_every_day() -> None:
    tallies = DailyTallies(SHANGHAI)
    first = _ts("2026-11-01T10:00:00")
    for n in range(30):
        start = first + n * 86_400
        tallies.apply(CallEnded(_call("1001", start, [(start, start + 10)])))
    assert len(tallies.days) == 30
    assert tallies.totals()["1001"].calls == 30
