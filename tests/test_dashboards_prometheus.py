"""Every PromQL expression of every dashboard panel and rule, run by a real Prometheus.

Debian's ``prometheus`` scrapes a running ctid (live floor wired in, the bundled demo capture
replayed fast, the example quota policy and the demo compliance policy loaded, so the quota and
compliance families have samples) for a while, with the alert rules loaded; then each
expression, with the dashboard's template variables filled in, goes through
``/api/v1/query``: none may fail, and the key panels must have data.  Prometheus's own rule
manager has evaluated every rule by then: none may report an error, nor an alert a template
that did not expand.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from ctid.config import Settings
from scripts.dashboards.__main__ import BUILDERS, OUT
from tests.test_daemon import running

ROOT = Path(__file__).resolve().parent.parent
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
POLICY = ROOT / "examples" / "policy.toml"
COMPLIANCE = ROOT / "examples" / "demo-compliance.toml"
# With the policies loaded, the joins of the quota and compliance rules run on real series.
RULE_INPUTS = (
    "ctid:seat_quota_pace:ratio",
    "ctid_seat_quota_target * (1 - ctid_seat_quota_attainment_ratio)",
    "ctid_compliance_checks_total",
)
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
SCRAPE_SECONDS = 15
VARIABLES = {
    "site": ".*",
    "team": ".*",
    "job": ".*",
    "quota_minutes": "120",
    "__range": "1h",
    "__range_s": "3600",
    "__rate_interval": "1m",
    "__interval": "15s",
}
# (dashboard file, panel title): panels that must show data on the demo floor.
KEY_PANELS = {
    ("ctid-wallboard.json", "Talk minutes today"),
    ("ctid-wallboard.json", "Floor talk hours today"),
    ("ctid-wallboard.json", "Floor effective calls today"),
    ("ctid-wallboard.json", "Effective calls today"),
    ("ctid-wallboard.json", "Live state"),
    ("ctid-wallboard.json", "Pace vs quota"),
    ("ctid-wallboard.json", "Team talk hours today"),
    ("ctid-wallboard.json", "Leaderboard: talk minutes"),
    ("ctid-wallboard.json", "Time to end of day"),
    ("ctid-seat.json", "Talk today"),
    ("ctid-seat.json", "State"),
    ("ctid-seat.json", "Time in state"),
    ("ctid-seat.json", "Calls today by direction"),
    ("ctid-team.json", "Calls ended per hour, by team"),
    ("ctid-team.json", "Seats by state"),
    ("ctid-team.json", "Teams today"),
    ("ctid-health.json", "AMI link per PBX"),
    ("ctid-health.json", "AMI frames and events per second"),
    ("ctid-health.json", "Event-loop lag (p50, p99) and full garbage collections"),
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        result: dict[str, Any] = _get(url)
    except urllib.error.HTTPError as err:  # 400 with an error body for a bad query
        result = json.loads(err.read())
    return result


def substitute(expr: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise AssertionError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def dashboard_targets() -> Iterator[tuple[str, str, str]]:
    """(file, panel title, expr) for every target of every panel."""
    for name in BUILDERS:
        board = json.loads((OUT / name).read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield name, panel["title"], target["expr"]


def rule_expressions() -> Iterator[tuple[str, str, str]]:
    for path in RULES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                yield path.name, rule.get("alert") or rule["record"], rule["expr"]


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    if not Path(PROMETHEUS).exists():
        pytest.skip("prometheus is not installed: run scripts/ensure-prometheus.sh")
    return PROMETHEUS


class Evaluated(NamedTuple):
    answers: list[tuple[str, str, str, dict[str, Any]]]
    """(file, panel or rule, expression, Prometheus's answer) for every expression."""
    targets: Any
    rules: Any
    """``/api/v1/rules``: each rule as Prometheus's rule manager last evaluated it."""
    alerts: Any
    """``/api/v1/alerts``: pending and firing alerts, annotations expanded."""
    inputs: dict[str, dict[str, Any]]
    """Answers to :data:`RULE_INPUTS`."""


def _edited(source: Path, tmp: Path, edits: dict[str, str]) -> Path:
    """``source`` copied into ``tmp`` with each pattern (one line each) replaced."""
    text = source.read_text(encoding="utf-8")
    for pattern, replacement in edits.items():
        text, count = re.subn(rf"(?m)^{pattern}.*$", replacement, text)
        assert count == 1, pattern
    path = tmp / source.name
    path.write_text(text, encoding="utf-8")
    return path


def _policies(tmp: Path) -> tuple[Path, Path]:
    """The example quota policy with every day a workday (quotas whatever day the test runs
    on), and the demo compliance policy keeping its opt-out journal in ``tmp``."""
    days = '["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]'
    policy = _edited(
        POLICY,
        tmp,
        {
            "workdays = ": f"workdays = {days}",
            "holidays = ": "holidays = []",
        },
    )
    compliance = _edited(COMPLIANCE, tmp, {'data_dir = "var"': f'data_dir = "{tmp / "optouts"}"'})
    return policy, compliance


def _run_stack(prometheus: str, tmp: Path) -> Evaluated:
    """Scrape ctid for a while, then evaluate every expression; returns the answers."""
    ctid_port, prom_port = _free_port(), _free_port()
    policy, compliance = _policies(tmp)
    settings = Settings(
        http={"port": ctid_port},
        demo={"speed": 20.0, "loop": True},
        site={"name": "demo", "timezone": "Asia/Shanghai"},
        seats=[
            {"id": f"10{n:02d}", "team": "inbound" if n <= 5 else "outbound"} for n in range(1, 11)
        ],
        policy={"file": policy, "report_dir": tmp / "reports"},
        compliance=compliance,
    )
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in RULES],
        "scrape_configs": [
            {"job_name": "ctid", "static_configs": [{"targets": [f"127.0.0.1:{ctid_port}"]}]}
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    base = f"http://127.0.0.1:{prom_port}"

    async def scenario() -> Evaluated:
        async with running(settings):
            with (tmp / "prometheus.log").open("wb") as log:
                process = await asyncio.create_subprocess_exec(
                    prometheus,
                    f"--config.file={tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--log.level=warn",
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
                try:
                    await asyncio.sleep(SCRAPE_SECONDS)
                    assert process.returncode is None, (tmp / "prometheus.log").read_text()
                    return await asyncio.to_thread(_evaluate, base)
                finally:
                    process.terminate()  # only the Prometheus this test started
                    await asyncio.wait_for(process.wait(), timeout=20)

    return asyncio.run(scenario())


def _evaluate(base: str) -> Evaluated:
    seats = _get(f"{base}/api/v1/label/seat/values")["data"]
    assert seats, "Prometheus has no seat series: did it scrape ctid?"
    values = {**VARIABLES, "seat": sorted(seats)[0]}
    answers = [
        (source, title, expr, _query(base, substitute(expr, values)))
        for source, title, expr in [*dashboard_targets(), *rule_expressions()]
    ]
    return Evaluated(
        answers,
        _get(f"{base}/api/v1/targets"),
        _get(f"{base}/api/v1/rules"),
        _get(f"{base}/api/v1/alerts"),
        {expr: _query(base, expr) for expr in RULE_INPUTS},
    )


@pytest.fixture(scope="module")
def evaluated(prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Evaluated:
    return _run_stack(prometheus_binary, tmp_path_factory.mktemp("prometheus"))


def test_prometheus_scrapes_ctid_in_openmetrics_without_errors(evaluated: Evaluated) -> None:
    (target,) = evaluated.targets["data"]["activeTargets"]
    assert target["health"] == "up", target["lastError"]
    assert target["lastError"] == ""


def test_every_dashboard_and_rule_expression_evaluates(evaluated: Evaluated) -> None:
    failures = [
        f"{source} / {title}: {answer.get('error')} in {expr}"
        for source, title, expr, answer in evaluated.answers
        if answer.get("status") != "success"
    ]
    assert not failures, "\n".join(failures)
    rules = {(source, name) for source, name, _e in rule_expressions()}
    asked = {(source, title) for source, title, _e, _a in evaluated.answers}
    assert rules <= asked
    assert len(evaluated.answers) >= 60  # every panel target and rule was asked


def test_key_panels_show_data_on_the_demo_floor(evaluated: Evaluated) -> None:
    empty = {
        (source, title)
        for source, title, _expr, answer in evaluated.answers
        if (source, title) in KEY_PANELS and not answer["data"]["result"]
    }
    assert not empty, f"key panels without data: {sorted(empty)}"
    seen = {(source, title) for source, title, _e, _a in evaluated.answers}
    assert seen >= KEY_PANELS  # a renamed panel must not silently leave the list


def test_prometheus_loads_and_evaluates_every_rule_without_error(evaluated: Evaluated) -> None:
    loaded = [
        (group["file"], rule)
        for group in evaluated.rules["data"]["groups"]
        for rule in group["rules"]
    ]
    assert len(loaded) == len(list(rule_expressions()))
    broken = [
        f"{Path(file).name} / {rule['name']}: {rule['health']} {rule.get('lastError', '')}"
        for file, rule in loaded
        if rule["health"] != "ok" or rule.get("lastError")
    ]
    assert not broken, "\n".join(broken)


def test_active_alerts_expand_their_templates(evaluated: Evaluated) -> None:
    for alert in evaluated.alerts["data"]["alerts"]:
        for key, text in alert["annotations"].items():
            where = f"{alert['labels']['alertname']} {key}: {text}"
            assert "error expanding template" not in text, where
            assert "<no value>" not in text, where


def test_quota_and_compliance_inputs_of_the_rules_have_data(evaluated: Evaluated) -> None:
    empty = [expr for expr, answer in evaluated.inputs.items() if not answer["data"]["result"]]
    assert not empty, f"no data for {empty}"
