"""Alert rules (promtool unit tests) and dashboard files (generated, well-formed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.dashboards.__main__ import BUILDERS, OUT, render

ROOT = Path(__file__).resolve().parent.parent
OWN_RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((ROOT / "tests" / "promtool").glob("*.test.yml"))
SEVERITIES = {"warning", "critical"}
CATEGORIES = {"quota", "compliance", "health"}  # what deploy/alertmanager routes on
# Labels a rule may aggregate or join on: ctid's bounded labels and the scrape's own.
BOUNDED_LABELS = {"site", "team", "seat", "quota", "rule", "mode", "pbx", "instance", "job"}
# Alerts on a 0/1 value (up, ctid_ami_connected): the number they carry is their `for:`.
ZERO_ONE_ALERTS = {"CtidDown", "AmiDown"}


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


def _alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in OWN_RULES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def _alert_cases() -> list[dict[str, Any]]:
    return [
        case
        for path in RULE_TESTS
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
        for case in group.get("alert_rule_test", [])
    ]


def test_every_rule_file_is_unit_tested() -> None:
    tested = {
        Path(name).name
        for path in RULE_TESTS
        for name in yaml.safe_load(path.read_text(encoding="utf-8"))["rule_files"]
    }
    assert {path.name for path in OWN_RULES} <= tested


def test_every_alert_has_a_promtool_test() -> None:
    alerts = {rule["alert"] for rule in _alert_rules()}
    tested = {case["alertname"] for case in _alert_cases() if case.get("exp_alerts")}
    assert alerts <= tested, f"alerts never shown firing in tests: {alerts - tested}"


def test_every_alert_is_shown_quiet_in_a_promtool_test_too() -> None:
    alerts = {rule["alert"] for rule in _alert_rules()}
    quiet = {case["alertname"] for case in _alert_cases() if not case.get("exp_alerts")}
    assert alerts <= quiet, f"alerts never shown not firing in tests: {alerts - quiet}"


def test_every_alert_has_severity_category_summary_and_description() -> None:
    for rule in _alert_rules():
        name, labels = rule["alert"], rule.get("labels", {})
        assert labels.get("severity") in SEVERITIES, name
        assert labels.get("category") in CATEGORIES, name
        assert {"summary", "description"} <= rule.get("annotations", {}).keys(), name
        if name not in ZERO_ONE_ALERTS:
            text = " ".join(rule["annotations"].values())
            assert "$value" in text, f"{name}: its annotations should give the number"


def test_every_alert_says_why_its_threshold_was_chosen() -> None:
    for path in OWN_RULES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if line.lstrip().startswith("- alert:"):
                assert lines[number + 1].lstrip().startswith("#"), f"{path.name}:{number + 1}"


def test_alerts_about_teams_fire_with_the_team_label_the_routes_use() -> None:
    # Health alerts are about ctid and its PBXs; abandoned calls reached no seat, so no team.
    per_team = {
        rule["alert"] for rule in _alert_rules() if rule["labels"]["category"] != "health"
    } - {"AbandonRateHigh"}
    with_team = {
        case["alertname"]
        for case in _alert_cases()
        if any("team" in alert["exp_labels"] for alert in case.get("exp_alerts") or [])
    }
    assert per_team <= with_team, f"never shown firing with a team: {per_team - with_team}"


def test_rules_group_and_match_only_on_bounded_labels() -> None:
    rules = [
        rule
        for path in OWN_RULES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]
    for rule in rules:
        for match in re.finditer(r"\b(?:by|on|without)\s*\(([^)]*)\)", rule["expr"]):
            labels = {name.strip() for name in match.group(1).split(",") if name.strip()}
            assert labels <= BOUNDED_LABELS, f"{rule.get('alert') or rule['record']}: {labels}"


def test_metrics_doc_lists_every_alert() -> None:
    doc = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    section = doc.split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE))
    assert listed == {rule["alert"] for rule in _alert_rules()}


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
