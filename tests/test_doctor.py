"""``ctid doctor`` against the replay AMI server speaking the protocol over TCP."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from ctid.ami.capture import load_capture
from ctid.ami.server import AmiReplayServer
from ctid.cli import main
from ctid.config import Settings
from ctid.doctor import judge, observe
from tests.truth import CAPTURES


def _endpoints(action: str) -> Iterable[Mapping[str, str]]:
    if action.lower() != "pjsipshowendpoints":
        return []
    return [{"ObjectName": name} for name in ("1001", "1002", "carrier")]


def _settings(port: int, secret: str, seats: list[str]) -> Settings:
    return Settings(
        pbx=[{"name": "pbx1", "port": port, "secret": secret, "trunks": ["carrier"]}],
        seats=[{"id": s} for s in seats],
    )


@pytest.mark.asyncio
async def test_doctor_passes_a_good_setup_and_flags_unfiltered_noise() -> None:
    capture = load_capture(CAPTURES / "answered_customer_hangup.ami.gz")
    async with AmiReplayServer(capture, secret="s", list_items=_endpoints) as pbx:
        settings = _settings(pbx.port, "s", ["1001", "1002"])
        seen = await observe(settings.pbx[0], listen=0.3, patience=2)
    findings = {f.check: f for f in judge(settings.pbx[0], settings, seen)}
    assert findings["login"].ok is True
    assert findings["write privileges"].ok is True
    assert findings["timestampevents"].ok is True
    # The replay server answers Ping with its own clock, which is ours.
    assert findings["clock skew"].ok is True
    # The recording was made with read=all and no filter: VarSet/CEL/RTCP are all there.
    assert findings["event filter"].ok is False
    assert "eventfilter" in findings["event filter"].hint
    assert findings["seats known to the PBX"].ok is True
    assert findings["trunks known to the PBX"].ok is True


@pytest.mark.asyncio
async def test_doctor_names_missing_seats() -> None:
    capture = load_capture(CAPTURES / "busy.ami.gz")
    async with AmiReplayServer(capture, secret="s", list_items=_endpoints) as pbx:
        settings = _settings(pbx.port, "s", ["1001", "1099"])
        seen = await observe(settings.pbx[0], listen=0.1, patience=2)
    findings = {f.check: f for f in judge(settings.pbx[0], settings, seen)}
    assert findings["seats known to the PBX"].ok is False
    assert findings["seats known to the PBX"].detail == "missing: 1099"


@pytest.mark.asyncio
async def test_doctor_reports_a_refused_login_with_a_hint() -> None:
    capture = load_capture(CAPTURES / "busy.ami.gz")
    async with AmiReplayServer(capture, secret="right") as pbx:
        settings = _settings(pbx.port, "wrong", [])
        seen = await observe(settings.pbx[0], listen=0.1, patience=1)
    (reachable, login) = judge(settings.pbx[0], settings, seen)
    assert reachable.ok is True
    assert login.ok is False
    assert "manager.conf" in login.line()


@pytest.mark.asyncio
async def test_doctor_reports_an_unreachable_pbx() -> None:
    settings = _settings(1, "s", [])  # nothing listens on port 1
    seen = await observe(settings.pbx[0], listen=0.1, patience=1)
    (finding,) = judge(settings.pbx[0], settings, seen)
    assert finding.ok is False
    assert "bindaddr" in finding.hint


def test_doctor_without_a_pbx_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ctid.toml"
    config.write_text("")
    assert main(["doctor", "--config", str(config)]) == 2
    assert "no [[pbx]] configured" in capsys.readouterr().err


def test_a_skewed_pbx_clock_is_flagged() -> None:
    from ctid.doctor import Observation

    settings = _settings(5038, "s", [])
    seen = Observation(logged_in=True, skew=-7.5, endpoints={"carrier"})
    findings = {f.check: f for f in judge(settings.pbx[0], settings, seen)}
    assert findings["clock skew"].ok is False
    assert findings["clock skew"].detail == "PBX clock -7.500 s from ours"
    assert findings["timestampevents"].ok is None


@pytest.mark.asyncio
async def test_doctor_checks_the_store_is_reachable_and_migrated(tmp_path: Path) -> None:
    from ctid.doctor_services import check_store
    from ctid.store.migrate import upgrade
    from ctid.store.settings import StoreSettings

    url = f"sqlite:///{tmp_path / 'ctid.db'}"
    empty = await check_store(StoreSettings(url=url))
    assert empty.ok is False
    assert "ctid db upgrade" in empty.hint
    upgrade(url)
    assert (await check_store(StoreSettings(url=url))).ok is True
    down = await check_store(StoreSettings(url="postgresql://ctid@127.0.0.1:1/ctid"))
    assert down.ok is False
    assert "credentials" in down.hint


@pytest.mark.asyncio
async def test_doctor_reports_an_unreachable_mqtt_broker() -> None:
    from ctid.doctor_services import check_mqtt
    from ctid.mqtt.settings import MqttSettings

    finding = await check_mqtt(MqttSettings(enabled=True, port=1), patience=2)
    assert finding.ok is False
    assert "127.0.0.1:1" in finding.detail
    assert (await check_mqtt(MqttSettings(enabled=False))).ok is True
