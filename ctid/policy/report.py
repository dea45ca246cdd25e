"""The end-of-day statistics for department managers: per-team tables, CSV and JSON files.

Built from the engine at a moment (typically ``end_of_day - report_before_eod_minutes``); fines
are what the shortfall at that moment would cost. Robot seats are listed apart and left out of
the team roll-ups, so automation does not hide a team's human shortfall. Every row names the
policy ``version`` that judged it.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctid.policy.engine import QuotaEngine, SeatEvaluation
from ctid.policy.progress import Status, worst_status
from ctid.policy.scheduler import Clock
from ctid.policy.schema import QUOTA_NAMES, QuotaName
from ctid.policy.workday import local_day

COLUMNS = (
    "team",
    "seat",
    "name",
    "kind",
    "tier",
    "talk_minutes",
    "effective_calls",
    "faxes",
    "follow_ups",
    "dials",
    *(f"attainment_{q}" for q in QUOTA_NAMES),
    "status",
    "fine",
    "policy_version",
)


@dataclass(frozen=True, slots=True)
class ReportRow:
    team: str
    seat: str
    name: str
    kind: str
    tier: str
    day: dt.date
    actuals: dict[QuotaName, float]
    attainment: dict[QuotaName, float]
    status: Status
    fine: float
    policy_version: str = ""

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "team": self.team,
            "seat": self.seat,
            "name": self.name,
            "kind": self.kind,
            "tier": self.tier,
        }
        record |= {q: round(self.actuals.get(q, 0.0), 2) for q in QUOTA_NAMES}
        record |= {f"attainment_{q}": _ratio(self.attainment.get(q)) for q in QUOTA_NAMES}
        extra = {"status": self.status, "fine": round(self.fine, 2)}
        return record | extra | {"policy_version": self.policy_version}


@dataclass(frozen=True, slots=True)
class TeamTotals:
    team: str
    leader: str
    targets: dict[QuotaName, float]
    actuals: dict[QuotaName, float]
    status: Status
    fine: float


@dataclass(frozen=True, slots=True)
class EodReport:
    day: dt.date
    """Local date of the policy's first site; names the files."""
    generated_at: dt.datetime
    currency: str
    rows: list[ReportRow]
    """Human seats, sorted by team then seat."""
    robots: list[ReportRow]
    teams: list[TeamTotals]


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _row(
    evaluation: SeatEvaluation, actuals: dict[QuotaName, float], policy_version: str
) -> ReportRow:
    seat = evaluation.seat
    return ReportRow(
        team=seat.team,
        seat=seat.id,
        name=seat.name,
        kind=seat.kind,
        tier=evaluation.tier,
        day=evaluation.day,
        actuals=actuals,
        attainment={q: p.attainment for q, p in evaluation.quotas.items()},
        status=evaluation.status,
        fine=evaluation.fine,
        policy_version=policy_version,
    )


def _team_totals(engine: QuotaEngine, team: str, members: list[SeatEvaluation]) -> TeamTotals:
    configured = engine.policy.teams.get(team)
    targets: dict[QuotaName, float] = {}
    actuals: dict[QuotaName, float] = {}
    for evaluation in members:
        for quota, progress in evaluation.quotas.items():
            targets[quota] = targets.get(quota, 0.0) + progress.target
            actuals[quota] = actuals.get(quota, 0.0) + progress.actual
    if configured is not None:
        targets |= configured.targets.as_dict()
    return TeamTotals(
        team=team,
        leader=configured.leader if configured else "",
        targets=targets,
        actuals=actuals,
        status=worst_status([e.status for e in members]),
        fine=sum(e.fine for e in members),
    )


def build_report(engine: QuotaEngine, now: dt.datetime) -> EodReport:
    evaluations = sorted(
        (engine.evaluate(seat, now) for seat in engine.seat_ids()),
        key=lambda e: (e.seat.team, e.seat.id),
    )
    rows: list[ReportRow] = []
    robots: list[ReportRow] = []
    by_team: dict[str, list[SeatEvaluation]] = {}
    for evaluation in evaluations:
        actuals = engine.actuals(evaluation.seat.id, evaluation.day)
        row = _row(evaluation, actuals, engine.policy.version)
        if evaluation.seat.kind == "robot":
            robots.append(row)
            continue
        rows.append(row)
        by_team.setdefault(evaluation.seat.team, []).append(evaluation)
    teams = [_team_totals(engine, team, members) for team, members in by_team.items()]
    day = local_day(next(iter(engine.policy.sites.values())), now)
    return EodReport(day, now, engine.policy.fines.currency, rows, robots, teams)


def write_csv(report: EodReport, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        for row in [*report.rows, *report.robots]:
            writer.writerow(row.as_record())


def report_json(report: EodReport) -> dict[str, Any]:
    return {
        "generated_at": report.generated_at.isoformat(),
        "currency": report.currency,
        "seats": [row.as_record() | {"day": row.day.isoformat()} for row in report.rows],
        "robots": [row.as_record() | {"day": row.day.isoformat()} for row in report.robots],
        "teams": [
            {
                "team": t.team,
                "leader": t.leader,
                "targets": {q: round(v, 2) for q, v in t.targets.items()},
                "actuals": {q: round(v, 2) for q, v in t.actuals.items()},
                "status": t.status,
                "fine": round(t.fine, 2),
            }
            for t in report.teams
        ],
    }


def write_json(report: EodReport, path: Path) -> None:
    text = json.dumps(report_json(report), ensure_ascii=False, indent=2)
    path.write_text(text + "\n", encoding="utf-8")


def write_report_files(report: EodReport, out_dir: Path) -> list[Path]:
    """Write ``quota-YYYY-MM-DD.csv`` and ``.json``; blocking, so the daemon runs it in a thread
    (the report itself is built in the event loop, where the engine lives)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"quota-{report.day.isoformat()}"
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    write_csv(report, csv_path)
    write_json(report, json_path)
    return [csv_path, json_path]


def report_today(engine: QuotaEngine, clock: Clock, out_dir: Path) -> list[Path]:
    """``ctid report today``: the report as of now, written to ``out_dir``."""
    return write_report_files(build_report(engine, clock.now()), out_dir)
