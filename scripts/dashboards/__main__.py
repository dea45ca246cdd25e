"""Write deploy/grafana/dashboards/*.json: ``python -m scripts.dashboards [--check]``.

The JSON files are what Grafana provisions; this generator keeps their queries consistent.
``--check`` exits 1 when a committed file differs from what the generator writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from scripts.dashboards.floor import seat_detail, team_centre, wallboard
from scripts.dashboards.ops import compliance, health
from scripts.dashboards.panels import JSON

OUT = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
BUILDERS = {
    "ctid-wallboard.json": wallboard,
    "ctid-seat.json": seat_detail,
    "ctid-team.json": team_centre,
    "ctid-compliance.json": compliance,
    "ctid-health.json": health,
}


def render(board: JSON) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        text = render(build())
        path = OUT / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale dashboards (run python -m scripts.dashboards): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
