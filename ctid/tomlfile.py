"""Reading a TOML file and reporting what is wrong with it in one line, naming file and key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ctid.errors import CtidError


def read_toml(path: Path, error: type[CtidError], what: str) -> dict[str, Any]:
    """The parsed file; ``error("<path>: <why>")`` for a missing, unreadable or invalid one."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise error(f"{path}: no such {what}") from err
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text") from err
    except tomllib.TOMLDecodeError as err:
        raise error(f"{path}: invalid TOML: {err}") from err


def key_path(loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as a config key: ``("pbx", 0, "port")`` → ``pbx[0].port``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        else:
            parts.append(item)
    return ".".join(parts) or "(top level)"


def first_problem(source: str, err: ValidationError) -> str:
    """``<source>: <key>: <message>`` for the first validation error, counting the rest."""
    first = err.errors()[0]
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{source}: {key_path(first['loc'])}: {first['msg']}{more}"
