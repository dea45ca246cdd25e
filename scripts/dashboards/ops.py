"""Compliance and ctid health dashboards."""

from __future__ import annotations

from scripts.dashboards.panels import (
    GREEN,
    JSON,
    ORANGE,
    RED,
    SEAT,
    Layout,
    bargauge,
    dashboard,
    ratio_stat,
    site_team_variables,
    stat,
    table,
    target,
    thresholds,
    timeseries,
)

VIOLATIONS = f"ctid_compliance_violations_total{{{SEAT}}}"


def compliance() -> JSON:
    grid = Layout()
    panels = [
        grid.place(
            stat(
                "Violations in range",
                [
                    target(
                        f"sum(increase({VIOLATIONS}[$__range])) or vector(0)", "all", instant=True
                    )
                ],
                steps=thresholds((GREEN, None), (ORANGE, 1), (RED, 10)),
                text_mode="value",
            ),
            6,
            5,
        ),
        grid.place(
            stat(
                "Calls intercepted in range",
                [
                    target(
                        f"sum(increase(ctid_compliance_interceptions_total{{{SEAT}}}[$__range]))"
                        " or vector(0)",
                        "intercepted",
                        instant=True,
                    )
                ],
                text_mode="value",
            ),
            6,
            5,
        ),
        grid.place(
            ratio_stat(
                "Interception rate",
                f"ctid_compliance_interceptions_total{{{SEAT}}}",
                f"ctid_compliance_checks_total{{{SEAT}}}",
                "rate",
                steps=thresholds((GREEN, None), (ORANGE, 0.01), (RED, 0.05)),
            ),
            6,
            5,
        ),
        grid.place(
            stat(
                "Policy in force",
                [target("ctid_policy_info", "{{version}}", instant=True)],
                text_mode="name",
            ),
            6,
            5,
        ),
        grid.place(
            timeseries(
                "Violations per hour, by rule",
                [
                    target(
                        f"sum by (rule) (rate({VIOLATIONS}[$__rate_interval])) * 3600",
                        "{{rule}}",
                    )
                ],
                unit="short",
                stack=True,
            ),
            12,
            8,
        ),
        grid.place(
            bargauge(
                "Violations by rule and mode",
                [
                    target(
                        f"sum by (rule, mode) (increase({VIOLATIONS}[$__range]))",
                        "{{rule}} / {{mode}}",
                        instant=True,
                    )
                ],
                steps=thresholds((ORANGE, None)),
            ),
            12,
            8,
        ),
        grid.place(
            table(
                "Violations by team",
                [
                    target(
                        f"sum by (team, rule, mode) (increase({VIOLATIONS}[$__range]))",
                        "",
                        instant=True,
                    )
                ],
            ),
            24,
            8,
        ),
    ]
    return dashboard(
        "ctid-compliance", "Compliance", panels, site_team_variables(), time_from="now-24h"
    )


def _quantile(q: float, family: str) -> str:
    return (
        f'histogram_quantile({q}, sum by (le) (rate({family}_bucket{{job=~"$job"}}'
        "[$__rate_interval])))"
    )


def health() -> JSON:
    job = 'job=~"$job"'
    grid = Layout()
    panels = [
        grid.place(
            stat(
                "AMI link per PBX",
                [target(f"ctid_ami_connected{{{job}}}", "{{pbx}}", instant=True)],
                mappings=[
                    {
                        "type": "value",
                        "options": {
                            "0": {"text": "down", "color": RED, "index": 0},
                            "1": {"text": "up", "color": GREEN, "index": 1},
                        },
                    }
                ],
                steps=thresholds((RED, None), (GREEN, 1)),
            ),
            8,
            5,
        ),
        grid.place(
            stat(
                "ctid scrape",
                [
                    target(f"up{{{job}}}", "up", instant=True),
                    target(
                        f"scrape_duration_seconds{{{job}}}", "scrape time", instant=True, ref="B"
                    ),
                ],
                steps=thresholds((GREEN, None)),
            ),
            8,
            5,
        ),
        grid.place(
            stat(
                "Build",
                [target(f"ctid_build_info{{{job}}}", "{{version}}", instant=True)],
                text_mode="name",
            ),
            8,
            5,
        ),
        grid.place(
            timeseries(
                "AMI frames and events per second",
                [
                    target(
                        f"sum by (pbx) (rate(ctid_ami_frames_total{{{job}}}[$__rate_interval]))",
                        "{{pbx}} frames",
                    ),
                    target(
                        "sum by (pbx) (rate(ctid_ami_events_applied_total"
                        f"{{{job}}}[$__rate_interval]))",
                        "{{pbx}} events used",
                        ref="B",
                    ),
                ],
                unit="ops",
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "Reconnects and gap seconds",
                [
                    target(
                        f"sum by (pbx) (increase(ctid_ami_reconnects_total{{{job}}}[1h]))",
                        "{{pbx}} reconnects / h",
                    ),
                    target(
                        f"sum by (pbx) (increase(ctid_ami_gap_seconds_total{{{job}}}[1h]))",
                        "{{pbx}} gap s / h",
                        ref="B",
                    ),
                ],
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "Event-loop lag (p50, p99) and full garbage collections",
                [
                    target(_quantile(0.5, "ctid_event_loop_lag_seconds"), "p50"),
                    target(_quantile(0.99, "ctid_event_loop_lag_seconds"), "p99", ref="B"),
                    target(
                        "max by (instance) (rate(ctid_gc_pause_seconds_sum"
                        f'{{{job},generation="2"}}[$__rate_interval]) / '
                        "rate(ctid_gc_pause_seconds_count"
                        f'{{{job},generation="2"}}[$__rate_interval]))',
                        "full GC pause (mean)",
                        ref="C",
                    ),
                ],
                unit="s",
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "Queue depth (store, MQTT)",
                [target(f"ctid_queue_depth{{{job}}}", "{{queue}}")],
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "MQTT",
                [
                    target(f"ctid_mqtt_connected{{{job}}}", "connected"),
                    target(
                        f"rate(ctid_mqtt_messages_published_total{{{job}}}[$__rate_interval])",
                        "published / s",
                        ref="B",
                    ),
                    target(
                        f"increase(ctid_mqtt_messages_dropped_total{{{job}}}[$__rate_interval])",
                        "dropped",
                        ref="C",
                    ),
                ],
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "Data completeness and CDR drift",
                [
                    target(f"ctid_data_completeness_ratio{{{job}}}", "{{pbx}} completeness"),
                    target(
                        _quantile(0.95, "ctid_cdr_talk_drift_seconds"), "drift p95 (s)", ref="B"
                    ),
                ],
            ),
            12,
            8,
        ),
    ]
    variables = [
        {
            "type": "query",
            "name": "job",
            "label": "Job",
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "definition": "label_values(ctid_ami_connected, job)",
            "query": {"query": "label_values(ctid_ami_connected, job)", "refId": "job-variable"},
            "refresh": 2,
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {},
            "options": [],
            "hide": 0,
        }
    ]
    return dashboard("ctid-health", "ctid health", panels, variables, time_from="now-6h")
