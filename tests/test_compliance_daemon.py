"""The daemon with a compliance policy: opt-outs restored from the journal, a dial hung up.

Skipped until the wiring (``Settings.compliance``, ``Floor.compliance``) is in the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from ctid.ami.capture import load_capture
from ctid.ami.server import AmiReplayServer
from ctid.config import Settings
from ctid.daemon import Floor, run_daemon

CAPTURES = Path(__file__).parent / "captures"


@pytest.mark.skipif(
    "compliance" not in Settings.model_fields, reason="compliance not wired into the daemon yet"
)
@pytest.mark.asyncio
async def test_the_daemon_hangs_up_a_dial_to_a_journalled_opt_out(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'version = "w1"\n[calling_hours]\nmode = "off"\n[frequency]\nmode = "off"\n'
        f'[do_not_call]\nmode = "enforce"\ndata_dir = "{tmp_path}"\n'
    )
    (tmp_path / "optouts.jsonl").write_text(
        '{"op": "add", "number": "+17203000104", "ts": 0, "source": "t"}\n'
    )
    async with AmiReplayServer(load_capture(CAPTURES / "busy.ami.gz"), secret="s") as server:
        settings = Settings.model_validate(
            {
                "pbx": [{"name": "p1", "port": server.port, "secret": "s", "auth": "plain"}],
                "http": {"enabled": False},
                "compliance": policy,
            }
        )
        ready: list[Floor] = []
        task = asyncio.create_task(
            run_daemon(settings, handle_signals=False, on_ready=lambda f, p: ready.append(f))
        )
        try:
            for _ in range(300):
                await asyncio.sleep(0.01)
                if any(a.name == "Hangup" for a in server.actions_received):
                    break
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    (hangup,) = [a for a in server.actions_received if a.name == "Hangup"]
    assert hangup.get("Channel") == "PJSIP/1005-00000006"
    service = vars(ready[0])["compliance"]  # typed access once the wiring has landed
    assert service.enforcer.outcomes[0].ok
