"""Reading a policy file: every problem as ``file:line: key: message``; seats merged with config.

Line numbers come from tomllib for syntax errors; for validation errors they are a best-effort
search for the offending key in the text (tomllib keeps no positions), so a reported line can
be missing but never points at an unrelated key of another name.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from ctid.errors import PolicyError
from ctid.policy.schema import Policy, SeatKind
from ctid.policy.tiers import SeatProfile


class ConfigSeat(Protocol):
    """What the main config's ``[[seats]]`` entries offer (``ctid.config.SeatSettings``)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def team(self) -> str: ...
    @property
    def hire_date(self) -> Any: ...
    @property
    def kind(self) -> SeatKind: ...


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _mentions(line: str, key: str) -> bool:
    """``key`` is a component of a table header on this line, or is assigned on it."""
    header = _HEADER.match(line)
    if header:
        return key in [part.strip().strip('"') for part in header.group(1).split(".")]
    return re.search(rf"(?:^|[\s{{,]){re.escape(key)}\s*=", line) is not None


def line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the key at ``loc`` (``("seats", 2, "hire_date")``), if found."""
    lines = text.splitlines()
    row: int | None = None
    for index, part in enumerate(loc):
        start = row or 0
        if isinstance(part, int):
            parent = loc[index - 1] if index else None
            if not isinstance(parent, str):
                continue
            header = re.compile(rf"^\s*\[\[\s*{re.escape(parent)}\s*\]\]")
            hits = [n for n in range(len(lines)) if header.match(lines[n])]
            if part < len(hits):
                row = hits[part]
            continue
        hit = next((n for n in range(start, len(lines)) if _mentions(lines[n], part)), None)
        if hit is None:
            break
        row = hit
    return None if row is None else row + 1


def _dotted(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]" if parts else f"[{item}]"]
        else:
            parts.append(item)
    return ".".join(parts) or "(top level)"


def _parse(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PolicyError(f"{path}: cannot read ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise PolicyError(f"{path}: not UTF-8 text") from err
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # tomllib's message ends with "(at line L, column C)".
        raise PolicyError(f"{path}: invalid TOML: {err}") from err


def check_policy(path: Path) -> list[str]:
    """Every problem in the file, one line each; an empty list means the policy is valid."""
    try:
        text, data = _parse(path)
        Policy.model_validate(data)
    except PolicyError as err:
        return [str(err)]
    except ValidationError as err:
        problems = []
        for error in err.errors():
            loc = tuple(error["loc"])  # empty for a whole-model check: no line then
            line = line_of(text, loc)
            where = f"{path}:{line}" if line else str(path)
            problems.append(f"{where}: {_dotted(loc)}: {error['msg']}")
        return problems
    return []


def load_policy(path: Path) -> Policy:
    problems = check_policy(path)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PolicyError(problems[0] + more)
    return Policy.model_validate(_parse(path)[1])


def resolve_seats(
    policy: Policy, config_seats: Mapping[str, ConfigSeat] | None = None
) -> dict[str, SeatProfile]:
    """Seats from the main config, with the policy's ``[[seats]]`` keys taking precedence."""
    merged: dict[str, SeatProfile] = {}
    for seat_id, seat in (config_seats or {}).items():
        team = seat.team
        merged[seat_id] = SeatProfile(
            seat_id,
            seat.name or seat_id,
            team,
            policy.site_of_team(team),
            seat.kind,
            seat.hire_date,
        )
    for entry in policy.seats:
        base = merged.get(entry.id)
        team = entry.team or (base.team if base else "default")
        merged[entry.id] = SeatProfile(
            id=entry.id,
            name=entry.name or (base.name if base else entry.id),
            team=team,
            site=policy.site_of_team(team),
            kind=entry.kind or (base.kind if base else "human"),
            hire_date=entry.hire_date or (base.hire_date if base else None),
            prior_experience_years=entry.prior_experience_years,
        )
    return merged
