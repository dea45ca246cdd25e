"""The abandon rate per queue over 24 h and 30 days, bucketed, and its gauge on /metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from ctid.compliance.abandon import AbandonRate, BucketedWindow, WindowCount, window_label
from ctid.compliance.settings import AbandonRateSettings
from ctid.config import Settings
from ctid.metrics.compliance import AbandonRateCollector
from tests.test_daemon import running
from tests.truth import CAPTURES

DAY = 86_400.0
HOUR = 3_600.0
REPORTS = [DAY, 30 * DAY]


def calls(rate: AbandonRate, queue: str, ts: float, offered: int, abandoned: int) -> None:
    for i in range(offered):
        rate.record(queue, ts + i, abandoned=i < abandoned)


def figures(rate: AbandonRate, now: float) -> dict[tuple[str, str], tuple[int, int]]:
    return {(c.queue, c.window): (c.offered, c.abandoned) for c in rate.report(now)}


def test_the_30_day_window_against_a_hand_computed_example() -> None:
    rate = AbandonRate(ceiling=0.03, window=DAY, min_calls=20, report_windows=REPORTS)
    calls(rate, "sales", 10 * HOUR, offered=20, abandoned=4)  # day 0, 10:00
    calls(rate, "sales", 20 * DAY + 10 * HOUR, offered=30, abandoned=1)  # day 20, 10:00
    calls(rate, "sales", 29 * DAY + 12 * HOUR, offered=50, abandoned=0)  # day 29, 12:00
    calls(rate, "support", 29 * DAY + 12 * HOUR, offered=4, abandoned=1)

    # Day 29, 13:00: the day holds only day 29's calls; 30 days hold all of them.
    at = 29 * DAY + 13 * HOUR
    assert figures(rate, at) == {
        ("sales", "24h"): (50, 0),
        ("sales", "30d"): (100, 5),  # 5 / 100 = 5 %
        ("support", "24h"): (4, 1),
        ("support", "30d"): (4, 1),
    }
    # The judged window is untouched by the report windows: exact, one day.
    assert rate.rate("sales", at) == (50, 0)

    # 30-minute buckets: day 0's calls (10:00-10:00:19) leave the 30 days at day 30, 10:00.
    assert figures(rate, 30 * DAY + 10 * HOUR - 1)[("sales", "30d")] == (100, 5)
    assert figures(rate, 30 * DAY + 10 * HOUR)[("sales", "30d")] == (80, 1)  # 1 / 80 = 1.25 %
    assert figures(rate, 30 * DAY + 10 * HOUR)[("sales", "24h")] == (50, 0)

    # Day 59.5: nothing left in either window: the queues are forgotten.
    assert rate.report(59 * DAY + 12 * HOUR) == []


def test_a_call_leaves_the_24_hour_window_on_its_minute() -> None:
    window = BucketedWindow(DAY)
    assert (window.width, window.count, window.label) == (60.0, 1440, "24h")
    window.add(120.0, abandoned=True)  # minute 2
    window.add(179.0, abandoned=False)  # minute 2 too
    assert window.totals(DAY + 119.0) == (2, 1)
    assert window.totals(DAY + 120.0) == (0, 0)


def test_memory_stays_bounded_over_two_months_of_calls() -> None:
    rate = AbandonRate(ceiling=0.03, window=DAY, min_calls=20, report_windows=REPORTS)
    month = BucketedWindow(30 * DAY)
    assert (month.width, month.count, month.label) == (1800.0, 1440, "30d")
    for minute in range(60 * 24 * 60):  # a call every minute for 60 days
        ts = minute * 60.0
        rate.record("sales", ts, abandoned=minute % 50 == 0)
        month.add(ts, abandoned=minute % 50 == 0)
    assert len(month) <= month.count + 1
    # In the last second of the last call's bucket, each window is exactly full:
    now = 60 * DAY - 1
    # 30 days: minutes 43200..86399, 43 200 calls; every 50th abandoned: 43200..86350, 864.
    assert month.totals(now) == (43_200, 864)
    assert figures(rate, now)[("sales", "30d")] == (43_200, 864)
    # 24 h: minutes 84960..86399, 1 440 calls; abandoned: 85000..86350, 28.
    assert figures(rate, now)[("sales", "24h")] == (1440, 28)


def test_the_gauge_is_scraped_per_site_queue_and_window() -> None:
    rate = AbandonRate(ceiling=0.03, window=DAY, min_calls=20, report_windows=REPORTS)
    calls(rate, "sales", 10 * HOUR, offered=20, abandoned=4)
    calls(rate, "sales", 29 * DAY + 12 * HOUR, offered=80, abandoned=1)
    registry = CollectorRegistry()
    registry.register(AbandonRateCollector("lab", lambda: rate.report(29 * DAY + 13 * HOUR)))
    samples = {
        (s.name, s.labels["queue"], s.labels["window"]): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
        if s.labels.get("site") == "lab"
    }
    assert samples == {
        ("ctid_abandon_rate_ratio", "sales", "24h"): pytest.approx(1 / 80),
        ("ctid_abandon_rate_ratio", "sales", "30d"): pytest.approx(5 / 100),
        ("ctid_abandon_rate_offered_calls", "sales", "24h"): 80,
        ("ctid_abandon_rate_offered_calls", "sales", "30d"): 100,
        ("ctid_abandon_rate_abandoned_calls", "sales", "24h"): 1,
        ("ctid_abandon_rate_abandoned_calls", "sales", "30d"): 5,
    }


def test_a_window_without_calls_has_counts_but_no_ratio() -> None:
    registry = CollectorRegistry()
    figures = [WindowCount("sales", "24h", 0, 0), WindowCount("sales", "30d", 10, 1)]
    registry.register(AbandonRateCollector("lab", lambda: figures))
    text = generate_latest(registry).decode()
    assert 'ctid_abandon_rate_ratio{queue="sales",site="lab",window="30d"} 0.1' in text
    assert 'ctid_abandon_rate_ratio{queue="sales",site="lab",window="24h"}' not in text
    assert 'ctid_abandon_rate_offered_calls{queue="sales",site="lab",window="24h"} 0.0' in text


@pytest.mark.parametrize(
    ("hours", "label"),
    [(24, "24h"), (720, "30d"), (1, "1h"), (0.5, "30m"), (48, "2d"), (36, "36h")],
)
def test_window_labels(hours: float, label: str) -> None:
    assert window_label(hours * HOUR) == label


def test_report_windows_are_configurable_and_checked() -> None:
    assert AbandonRateSettings().report_windows_hours == [24.0, 720.0]
    assert AbandonRateSettings(report_windows_hours=[1, 168]).report_windows_hours == [1, 168]
    with pytest.raises(ValidationError, match="repeat a label"):
        AbandonRateSettings(report_windows_hours=[24, 24])
    with pytest.raises(ValidationError, match="at least one minute"):
        AbandonRateSettings(report_windows_hours=[0])


@pytest.mark.asyncio
async def test_the_daemon_exports_the_gauge_for_an_abandoned_queue_call(tmp_path: Path) -> None:
    policy = tmp_path / "compliance.toml"
    policy.write_text('version = "a1"\n[abandon_rate]\nmode = "observe"\n', encoding="utf-8")
    settings = Settings(
        http={"port": 0},
        demo={"capture": CAPTURES / "inbound_queue_abandoned.ami.gz", "speed": 1000, "loop": False},
        compliance=policy,
    )
    async with running(settings) as (_floor, url), aiohttp.ClientSession() as http:
        for _ in range(200):
            async with http.get(f"{url}/metrics") as response:
                text = await response.text()
            if "ctid_abandon_rate_ratio{" in text:
                break
            await asyncio.sleep(0.05)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("ctid_abandon_rate_")
    }
    for window in ("24h", "30d"):
        labels = (("queue", "sales"), ("site", "site"), ("window", window))
        assert samples[("ctid_abandon_rate_ratio", labels)] == 1.0
        assert samples[("ctid_abandon_rate_offered_calls", labels)] == 1
    assert {key for _, labels in samples for key, _ in labels} == {"queue", "site", "window"}
