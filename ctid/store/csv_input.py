"""Reading a user's CSV file: one :class:`InputError` line for what is wrong with the file itself.

Row-level problems are the parser's to report (it knows the columns); this wraps the file:
missing or unreadable, not UTF-8 (a spreadsheet's byte-order mark is accepted), not CSV.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ctid.errors import InputError

if TYPE_CHECKING:
    from _csv import Reader

T = TypeVar("T")


def read_csv_file(path: Path, parse: Callable[[Reader], T]) -> T:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return parse(csv.reader(handle))
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text") from err
    except csv.Error as err:
        raise InputError(f"{path}: not valid CSV ({err})") from err
