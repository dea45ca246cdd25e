"""The daemon end to end: demo PBX over TCP → tracker → /metrics and /healthz over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ctid.ami.capture import load_capture
from ctid.ami.server import AmiReplayServer
from ctid.config import Settings
from ctid.daemon import Floor, run_daemon
from ctid.tracker.tallies import LIVE_KEEP_DAYS
from tests.truth import CAPTURES


@contextlib.asynccontextmanager
async def running(
    settings: Settings, *, ready_within: float = 10.0
) -> AsyncIterator[tuple[Floor, str]]:
    """The daemon in this event loop; its floor and base URL once it is serving."""
    ready: asyncio.Future[tuple[Floor, int | None]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_daemon(settings, handle_signals=False, on_ready=lambda f, p: ready.set_result((f, p)))
    )
    try:
        floor, port = await asyncio.wait_for(ready, timeout=ready_within)
        yield floor, f"http://127.0.0.1:{port}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _wait_for_calls(
    url: str, minimum: int
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            async with http.get(f"{url}/metrics") as response:
                samples = _samples(await response.text())
            ended = sum(v for (name, _), v in samples.items() if name == "ctid_calls_total")
            if ended >= minimum:
                return samples
            await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {minimum} calls ended")


@pytest.mark.asyncio
async def test_demo_mode_serves_per_seat_metrics_and_health() -> None:
    settings = Settings(
        http={"port": 0},
        demo={
            "capture": CAPTURES / "answered_customer_hangup.ami.gz",
            "speed": 1000,
            "loop": False,
        },
        site={"name": "test"},
    )
    async with running(settings) as (floor, url):
        # Only today (and yesterday) matter to a running daemon: older days are let go.
        assert floor.tallies.keep_days == LIVE_KEEP_DAYS
        samples = await _wait_for_calls(url, 1)
        talk = samples[
            (
                "ctid_seat_talk_seconds_today",
                (("seat", "1001"), ("site", "test"), ("team", "default")),
            )
        ]
        # Retimed to today by the demo server; 12.022 s in the recording.
        assert talk == pytest.approx(12.022, abs=0.01)
        key = (
            "ctid_calls_total",
            (
                ("direction", "outbound"),
                ("outcome", "answered"),
                ("site", "test"),
                ("team", "default"),
            ),
        )
        assert samples[key] == 1
        assert samples[("ctid_ami_connected", (("pbx", "demo"),))] == 1
        async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as response:
            assert response.status == 200
            assert (await response.json())["pbx"]["demo"]["connected"] is True


@pytest.mark.asyncio
async def test_health_is_503_while_the_pbx_refuses_our_login() -> None:
    capture = load_capture(CAPTURES / "busy.ami.gz")
    async with AmiReplayServer(capture, secret="right") as pbx:
        settings = Settings(
            http={"port": 0},
            pbx=[{"name": "pbx1", "port": pbx.port, "secret": "wrong", "auth": "plain"}],
        )
        async with running(settings) as (floor, url), aiohttp.ClientSession() as http:
            await asyncio.sleep(0.3)
            async with http.get(f"{url}/healthz") as response:
                assert response.status == 503
                report = await response.json()
            assert report["pbx"]["pbx1"]["connected"] is False
            assert "refused" in (floor.links[0].client.last_error or "")
