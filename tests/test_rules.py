"""Alert rules (promtool unit tests) and dashboard files (generated, well-formed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.dashboards.__main__ import BUILDERS, OUT, render

ROOT = Path(__file__).resolve().parent.parent
OWN_RULES = [
    ROOT / "deploy" / "prometheus" / "rules" / name
    for name in ("ctid-quota.yml", "ctid-compliance.yml")
]
RULE_TESTS = sorted((ROOT / "tests" / "promtool").glob("*.test.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed: run scripts/ensure-prometheus.sh")
    return found


def test_rule_files_pass_promtool_check(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, OWN_RULES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda path: path.name)
def test_promtool_rule_unit_tests_pass(promtool: str, test_file: Path) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        check=False,
        cwd=test_file.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_promtool_test() -> None:
    alerts = {
        rule["alert"]
        for path in OWN_RULES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
        for case in group.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts <= tested, f"alerts never shown firing in tests: {alerts - tested}"


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    for name, build in BUILDERS.items():
        committed = (OUT / name).read_text(encoding="utf-8")
        assert committed == render(build()), f"{name}: run python -m scripts.dashboards"


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_dashboards_use_the_provisioned_datasource_and_filter_by_site(name: str) -> None:
    board = json.loads((OUT / name).read_text(encoding="utf-8"))
    assert board["uid"].startswith("ctid-")
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    for panel in _panels(board):
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus"
            expr = target["expr"]
            if "ctid_seat_" in expr or "ctid_calls_total" in expr:
                assert 'site=~"$site"' in expr, f"{panel['title']}: {expr}"
    if name != "ctid-health.json":
        assert {"site", "team"} <= variables


def test_no_dashboard_groups_or_labels_by_a_call_identifier() -> None:
    for name in BUILDERS:
        text = (OUT / name).read_text(encoding="utf-8")
        for forbidden in ("linkedid", "uniqueid", "number", "caller"):
            assert forbidden not in text.lower(), f"{name} mentions {forbidden}"
