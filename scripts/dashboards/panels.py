"""Small builders for Grafana 10 dashboard JSON (schemaVersion 39) on the ``prometheus`` uid.

The datasource uid is the one deploy/grafana/provisioning/datasources/prometheus.yml defines.
Every query filters on ``site=~"$site"`` and, for per-seat or per-team series, ``team=~"$team"``;
both variables are multi-select with an "All" of ``.*``.
"""

from __future__ import annotations

import itertools
from typing import Any

JSON = dict[str, Any]
DATASOURCE: JSON = {"type": "prometheus", "uid": "prometheus"}
SCHEMA_VERSION = 39
SEAT = 'site=~"$site",team=~"$team"'
SITE = 'site=~"$site"'

RED, ORANGE, YELLOW, GREEN, BLUE, GREY, PURPLE = (
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "#808080",
    "purple",
)

STATE_CODES = ("idle", "ringing", "talking", "hold", "wrap_up", "paused", "offline")
STATE_COLOURS = (BLUE, YELLOW, GREEN, ORANGE, PURPLE, GREY, RED)


def state_code(selector: str) -> str:
    """One number per seat for its state (0 idle … 6 offline), for value mappings and colours."""
    terms = " or ".join(
        f'ctid_seat_state{{{selector},state="{state}"}} * {code}'
        for code, state in enumerate(STATE_CODES)
    )
    return f"max by (site, team, seat) ({terms})"


def state_mappings() -> list[JSON]:
    return [
        {
            "type": "value",
            "options": {
                str(code): {"text": state.replace("_", "-"), "color": colour, "index": code}
                for code, (state, colour) in enumerate(zip(STATE_CODES, STATE_COLOURS, strict=True))
            },
        }
    ]


def target(expr: str, legend: str = "", *, instant: bool = False, ref: str = "A") -> JSON:
    return {
        "datasource": DATASOURCE,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "instant": instant,
        "range": not instant,
    }


def thresholds(*steps: tuple[str, float | None]) -> JSON:
    return {
        "mode": "absolute",
        "steps": [{"color": colour, "value": value} for colour, value in steps],
    }


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping rows."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0
        self._ids = itertools.count(1)

    def place(self, panel: JSON, w: int, h: int) -> JSON:
        if self.x + w > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        panel["id"] = next(self._ids)
        self.x += w
        self.row_height = max(self.row_height, h)
        return panel

    def row(self, title: str) -> JSON:
        if self.x:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        panel = {"type": "row", "title": title, "collapsed": False, "panels": []}
        placed = self.place(panel, 24, 1)
        self.x, self.y, self.row_height = 0, self.y + 1, 0
        return placed


def _panel(kind: str, title: str, targets: list[JSON], defaults: JSON, options: JSON) -> JSON:
    return {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
    }


def stat(
    title: str,
    targets: list[JSON],
    *,
    unit: str = "none",
    steps: JSON | None = None,
    mappings: list[JSON] | None = None,
    text_mode: str = "value_and_name",
    decimals: int | None = None,
    description: str = "",
) -> JSON:
    defaults: JSON = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": steps or thresholds((BLUE, None)),
        "mappings": mappings or [],
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    panel = _panel(
        "stat",
        title,
        targets,
        defaults,
        {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "auto",
            "textMode": text_mode,
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "center",
            "wideLayout": True,
        },
    )
    if description:
        panel["description"] = description
    return panel


def ratio_stat(
    title: str, numerator: str, denominator: str, legend: str, *, steps: JSON | None = None
) -> JSON:
    """A stat of the share ``numerator / denominator`` over the dashboard's time range."""
    expr = f"sum(increase({numerator}[$__range])) / sum(increase({denominator}[$__range]))"
    return stat(
        title,
        [target(expr, legend, instant=True)],
        unit="percentunit",
        steps=steps,
        text_mode="value",
    )


def bargauge(
    title: str,
    targets: list[JSON],
    *,
    unit: str = "none",
    steps: JSON | None = None,
    maximum: float | None = None,
) -> JSON:
    defaults: JSON = {
        "unit": unit,
        "min": 0,
        "color": {"mode": "thresholds"},
        "thresholds": steps or thresholds((BLUE, None)),
    }
    if maximum is not None:
        defaults["max"] = maximum
    return _panel(
        "bargauge",
        title,
        targets,
        defaults,
        {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "left",
        },
    )


def timeseries(title: str, targets: list[JSON], *, unit: str = "none", stack: bool = False) -> JSON:
    return _panel(
        "timeseries",
        title,
        targets,
        {
            "unit": unit,
            "color": {"mode": "palette-classic"},
            "custom": {
                "drawStyle": "line",
                "lineWidth": 2,
                "fillOpacity": 20 if stack else 0,
                "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                "showPoints": "never",
                "spanNulls": True,
            },
        },
        {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def table(title: str, targets: list[JSON], *, unit: str = "none") -> JSON:
    panel = _panel(
        "table",
        title,
        targets,
        {"unit": unit, "custom": {"align": "auto", "cellOptions": {"type": "auto"}}},
        {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
    )
    panel["transformations"] = [{"id": "labelsToFields", "options": {"mode": "columns"}}]
    return panel


def query_variable(name: str, label: str, query: str, *, multi: bool = True) -> JSON:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable"},
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "current": {},
        "options": [],
        "hide": 0,
    }


def site_team_variables() -> list[JSON]:
    return [
        query_variable("site", "Site", "label_values(ctid_seat_talk_seconds_today, site)"),
        query_variable(
            "team", "Team", 'label_values(ctid_seat_talk_seconds_today{site=~"$site"}, team)'
        ),
    ]


def dashboard(
    uid: str,
    title: str,
    panels: list[JSON],
    variables: list[JSON],
    *,
    refresh: str = "10s",
    time_from: str = "now-12h",
    description: str = "",
) -> JSON:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["ctid"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["ctid"],
                "asDropdown": True,
                "title": "ctid",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {"list": variables},
        "panels": panels,
    }
