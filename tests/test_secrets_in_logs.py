"""A full daemon run against a PBX never logs the AMI secret or a full customer number."""

from __future__ import annotations

import asyncio
import re

import pytest
from structlog.testing import capture_logs

from ctid.ami.capture import load_capture
from ctid.ami.server import AmiReplayServer
from ctid.config import Settings
from tests.test_daemon import _wait_for_calls, running
from tests.truth import CAPTURES, load_truth

SECRET = "Tr0ub4dor-ctid-secret"


@pytest.mark.asyncio
async def test_no_secret_or_number_in_logs_of_a_full_run() -> None:
    name = "mixed_busy_period"
    numbers = {call["number"] for call in load_truth(name)["expected"]["per_call"]}
    capture = load_capture(CAPTURES / f"{name}.ami.gz")
    with capture_logs() as logs:
        async with AmiReplayServer(capture, secret=SECRET, close_after_stream=True) as pbx:
            settings = Settings(
                http={"port": 0},
                pbx=[{"name": "pbx1", "port": pbx.port, "secret": SECRET, "auth": "plain"}],
            )
            async with running(settings) as (_floor, url):
                await _wait_for_calls(url, 90)
                await asyncio.sleep(0.2)  # let the link drop and reconnect: more log lines
    text = repr(logs)
    assert len(logs) >= 3  # connected, disconnected, ... : the run did log
    assert SECRET not in text
    assert not [n for n in numbers if n in text]
    assert not re.search(r"\d{10,}", re.sub(r"pbx-\d+\.\d+|\d+\.\d+", "", text))
