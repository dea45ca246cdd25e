"""The floor's dashboards: sales-floor wallboard, seat detail, team / centre."""

from __future__ import annotations

from scripts.dashboards.panels import (
    BLUE,
    GREEN,
    JSON,
    ORANGE,
    RED,
    SEAT,
    SITE,
    YELLOW,
    Layout,
    bargauge,
    dashboard,
    query_variable,
    ratio_stat,
    site_team_variables,
    stat,
    state_code,
    state_mappings,
    table,
    target,
    thresholds,
    timeseries,
)

TALK = f"ctid_seat_talk_seconds_today{{{SEAT}}}"
EFFECTIVE = f"ctid_seat_effective_calls_today{{{SEAT}}}"
TALK_QUOTA = (
    f'max without (quota) (ctid_seat_quota_attainment_ratio{{{SEAT},quota="talk_seconds"}})'
)
# Talk-time attainment: the quota engine's figure when it runs, else minutes / $quota_minutes.
ATTAINMENT = f"({TALK_QUOTA} or {TALK} / ($quota_minutes * 60))"
PACE = (
    f"{ATTAINMENT} / on (site) group_left () clamp_min(ctid_workday_progress_ratio{{{SITE}}}, 0.05)"
)
PACE_STEPS = thresholds((RED, None), (YELLOW, 0.8), (GREEN, 1.0))


def wallboard() -> JSON:
    grid = Layout()
    panels = [
        grid.place(
            stat(
                "Time to end of day",
                [target(f"ctid_workday_remaining_seconds{{{SITE}}}", "{{site}}", instant=True)],
                unit="dtdurations",
                text_mode="value",
            ),
            6,
            4,
        ),
        grid.place(
            stat(
                "Floor talk hours today",
                [target(f"sum({TALK}) / 3600", "talk", instant=True)],
                unit="h",
                decimals=1,
                text_mode="value",
            ),
            6,
            4,
        ),
        grid.place(
            stat(
                "Floor effective calls today",
                [target(f"sum({EFFECTIVE})", "effective", instant=True)],
                text_mode="value",
            ),
            6,
            4,
        ),
        grid.place(
            stat(
                "Seats talking now",
                [
                    target(
                        f'count(ctid_seat_state{{{SEAT},state=~"talking|hold"}}) or vector(0)',
                        "talking",
                        instant=True,
                    )
                ],
                text_mode="value",
                steps=thresholds((GREEN, None)),
            ),
            6,
            4,
        ),
        grid.row("Seats"),
        grid.place(
            stat(
                "Talk minutes today",
                [target(f"{TALK} / 60", "{{seat}}", instant=True)],
                unit="m",
                decimals=0,
                steps=thresholds((RED, None), (YELLOW, 60), (GREEN, 120)),
                description="Minutes talked with customers today, hold excluded. Colours: "
                "under 1 h red, under 2 h yellow (edit the thresholds to your floor's quota).",
            ),
            24,
            8,
        ),
        grid.place(
            stat(
                "Pace vs quota",
                [target(PACE, "{{seat}}", instant=True)],
                unit="percentunit",
                decimals=0,
                steps=PACE_STEPS,
                description="Talk-time quota attained, relative to the share of the working "
                "day gone: 100 % = on pace. Uses the quota engine's targets when present, "
                "otherwise the quota_minutes variable.",
            ),
            24,
            8,
        ),
        grid.place(
            stat(
                "Effective calls today",
                [target(EFFECTIVE, "{{seat}}", instant=True)],
                steps=thresholds((BLUE, None)),
            ),
            12,
            8,
        ),
        grid.place(
            stat(
                "Live state",
                [target(state_code(SEAT), "{{seat}}", instant=True)],
                mappings=state_mappings(),
                steps=thresholds((BLUE, None)),
            ),
            12,
            8,
        ),
        grid.row("Teams and leaders"),
        grid.place(
            bargauge(
                "Team talk hours today",
                [target(f"sum by (team) ({TALK}) / 3600", "{{team}}", instant=True)],
                unit="h",
            ),
            8,
            9,
        ),
        grid.place(
            bargauge(
                "Leaderboard: talk minutes",
                [target(f"sort_desc(topk(10, {TALK} / 60))", "{{seat}} ({{team}})", instant=True)],
                unit="m",
                steps=thresholds((GREEN, None)),
            ),
            8,
            9,
        ),
        grid.place(
            bargauge(
                "Leaderboard: effective calls",
                [target(f"sort_desc(topk(10, {EFFECTIVE}))", "{{seat}} ({{team}})", instant=True)],
                steps=thresholds((GREEN, None)),
            ),
            8,
            9,
        ),
    ]
    variables = [
        *site_team_variables(),
        {
            "type": "textbox",
            "name": "quota_minutes",
            "label": "Talk quota (min/day)",
            "query": "120",
            "current": {"text": "120", "value": "120"},
            "hide": 0,
        },
    ]
    return dashboard(
        "ctid-wallboard",
        "Sales floor wallboard",
        panels,
        variables,
        refresh="5s",
        time_from="now-1h",
        description="Big tiles per seat for the floor screen: minutes vs quota, effective calls, "
        "live state; team totals and leaders.",
    )


def seat_detail() -> JSON:
    one = 'site=~"$site",team=~"$team",seat="$seat"'
    grid = Layout()
    panels = [
        grid.place(
            stat(
                "State",
                [target(state_code(one), "{{seat}}", instant=True)],
                mappings=state_mappings(),
                text_mode="value",
            ),
            4,
            5,
        ),
        grid.place(
            stat(
                "Time in state",
                [
                    target(
                        f"time() - ctid_seat_state_since_timestamp_seconds{{{one}}}",
                        "{{seat}}",
                        instant=True,
                    )
                ],
                unit="s",
                text_mode="value",
            ),
            4,
            5,
        ),
        grid.place(
            stat(
                "Talk today",
                [target(f"ctid_seat_talk_seconds_today{{{one}}}", "talk", instant=True)],
                unit="s",
                text_mode="value",
            ),
            4,
            5,
        ),
        grid.place(
            stat(
                "Hold today",
                [target(f"ctid_seat_hold_seconds_today{{{one}}}", "hold", instant=True)],
                unit="s",
                text_mode="value",
            ),
            4,
            5,
        ),
        grid.place(
            stat(
                "Effective / answered calls",
                [
                    target(f"ctid_seat_effective_calls_today{{{one}}}", "effective", instant=True),
                    target(
                        f"ctid_seat_answered_calls_today{{{one}}}",
                        "answered",
                        instant=True,
                        ref="B",
                    ),
                ],
            ),
            4,
            5,
        ),
        grid.place(
            stat(
                "Faxes today",
                [target(f"ctid_seat_faxes_today{{{one}}}", "faxes", instant=True)],
                text_mode="value",
            ),
            4,
            5,
        ),
        grid.place(
            bargauge(
                "Quota attainment",
                [target(f"ctid_seat_quota_attainment_ratio{{{one}}}", "{{quota}}", instant=True)],
                unit="percentunit",
                steps=PACE_STEPS,
                maximum=1,
            ),
            8,
            7,
        ),
        grid.place(
            bargauge(
                "Calls today by direction",
                [target(f"ctid_seat_calls_today{{{one}}}", "{{direction}}", instant=True)],
            ),
            8,
            7,
        ),
        grid.place(
            bargauge(
                "Outbound calls today by outcome",
                [target(f"ctid_seat_outbound_calls_today{{{one}}}", "{{outcome}}", instant=True)],
                steps=thresholds((ORANGE, None)),
            ),
            8,
            7,
        ),
        grid.place(
            timeseries(
                "Talk and hold through the day",
                [
                    target(f"ctid_seat_talk_seconds_today{{{one}}} / 60", "talk"),
                    target(f"ctid_seat_hold_seconds_today{{{one}}} / 60", "hold", ref="B"),
                ],
                unit="m",
            ),
            24,
            9,
        ),
    ]
    variables = [
        *site_team_variables(),
        query_variable(
            "seat",
            "Seat",
            'label_values(ctid_seat_talk_seconds_today{site=~"$site",team=~"$team"}, seat)',
            multi=False,
        ),
    ]
    return dashboard("ctid-seat", "Seat detail", panels, variables, time_from="now-12h")


def team_centre() -> JSON:
    calls = f"ctid_calls_total{{{SEAT}}}"
    inbound = f'ctid_calls_total{{{SITE},direction="inbound"}}'
    # Abandoned inbound calls reached no seat, hence no team: the rate is per site.
    abandoned = f'ctid_calls_total{{{SITE},direction="inbound",outcome="abandoned"}}'
    grid = Layout()
    panels = [
        grid.place(
            ratio_stat(
                "Abandon rate (inbound)",
                abandoned,
                inbound,
                "abandoned",
                steps=thresholds((GREEN, None), (ORANGE, 0.03), (RED, 0.05)),
            ),
            6,
            5,
        ),
        grid.place(
            ratio_stat(
                "Answer rate (outbound)",
                f'ctid_calls_total{{{SEAT},direction="outbound",outcome="answered"}}',
                f'ctid_calls_total{{{SEAT},direction="outbound"}}',
                "answered",
            ),
            6,
            5,
        ),
        grid.place(
            ratio_stat(
                "Interception rate",
                f"ctid_compliance_interceptions_total{{{SEAT}}}",
                f"ctid_compliance_checks_total{{{SEAT}}}",
                "intercepted",
            ),
            6,
            5,
        ),
        grid.place(
            stat(
                "Seats by state",
                [
                    target(
                        f"count by (state) (ctid_seat_state{{{SEAT}}})", "{{state}}", instant=True
                    )
                ],
            ),
            6,
            5,
        ),
        grid.place(
            timeseries(
                "Calls ended per hour, by team",
                [target(f"sum by (team) (rate({calls}[$__rate_interval])) * 3600", "{{team}}")],
                unit="short",
                stack=True,
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "Seats talking on average, by team",
                [
                    target(
                        "sum by (team) (rate("
                        f"ctid_talk_seconds_total{{{SEAT}}}[$__rate_interval]))",
                        "{{team}}",
                    )
                ],
                unit="short",
                stack=True,
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "Talk duration per call (median, p90)",
                [
                    target(
                        "histogram_quantile(0.5, sum by (le) (rate("
                        f"ctid_call_talk_duration_seconds_bucket{{{SEAT}}}[$__rate_interval])))",
                        "median",
                    ),
                    target(
                        "histogram_quantile(0.9, sum by (le) (rate("
                        f"ctid_call_talk_duration_seconds_bucket{{{SEAT}}}[$__rate_interval])))",
                        "p90",
                        ref="B",
                    ),
                ],
                unit="s",
            ),
            12,
            8,
        ),
        grid.place(
            bargauge(
                "Outbound outcomes today",
                [
                    target(
                        f"sum by (outcome) (ctid_seat_outbound_calls_today{{{SEAT}}})",
                        "{{outcome}}",
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
                "Teams today",
                [
                    target(
                        f"sum by (team) (ctid_seat_talk_seconds_today{{{SEAT}}}) / 60",
                        "talk minutes",
                        instant=True,
                    ),
                    target(
                        f"sum by (team) (ctid_seat_effective_calls_today{{{SEAT}}})",
                        "effective calls",
                        instant=True,
                        ref="B",
                    ),
                    target(
                        f"sum by (team) (ctid_seat_answered_calls_today{{{SEAT}}})",
                        "answered calls",
                        instant=True,
                        ref="C",
                    ),
                ],
            ),
            24,
            8,
        ),
    ]
    return dashboard(
        "ctid-team", "Team / centre", panels, site_team_variables(), time_from="now-12h"
    )
