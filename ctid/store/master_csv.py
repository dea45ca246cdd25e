"""Asterisk's ``cdr_csv`` file (``Master.csv``) read back, one :class:`CsvCdr` per row.

cdr_csv writes no header.  Its columns are 16 fixed ones (``accountcode`` … ``amaflags``),
then ``uniqueid`` (``loguniqueid = yes``), ``userfield`` (``loguserfield = yes``) and
``peeraccount``, ``linkedid``, ``sequence`` (``newcdrcolumns = yes``).  The layout follows
from the column count; a single optional column (17 or 20 in all) is the uniqueid when it
looks like one (``[system-]epoch.n``), else the userfield.

Times are the PBX's wall clock, whole seconds, no zone (UTC with ``usegmtime = yes``); they
are kept here as naive epoch seconds (the wall clock read as if it were UTC) and turned
into instants by whoever knows the PBX's offset.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ctid.errors import InputError
from ctid.store.rows import naive_seconds

FIXED_COLUMNS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
)  # fmt: skip
NEW_COLUMNS = ("peeraccount", "linkedid", "sequence")
_END = FIXED_COLUMNS.index("end")
_UNIQUEID = re.compile(r"^(?:[A-Za-z0-9_.-]+-)?[0-9]+\.[0-9]+$")


@dataclass(frozen=True, slots=True)
class CsvCdr:
    src: str
    dst: str
    channel: str
    dstchannel: str
    lastapp: str
    start: float
    """Naive epoch seconds: the PBX's wall clock read as UTC."""
    answer: float | None
    end: float
    duration: int
    billsec: int
    disposition: str
    uniqueid: str = ""
    linkedid: str = ""
    sequence: str = ""


def columns_for(count: int, sample: list[str]) -> tuple[str, ...] | None:
    """The column names of a row of ``count`` fields (``sample`` settles 17 and 20)."""
    extra = count - len(FIXED_COLUMNS)
    new = NEW_COLUMNS if extra >= len(NEW_COLUMNS) else ()
    optional = extra - len(new)
    if optional == 2:
        return (*FIXED_COLUMNS, "uniqueid", "userfield", *new)
    if optional == 1:
        value = sample[len(FIXED_COLUMNS)]
        return (*FIXED_COLUMNS, "uniqueid" if _UNIQUEID.match(value) else "userfield", *new)
    if optional == 0:
        return (*FIXED_COLUMNS, *new)
    return None


def parse_row(fields: list[str]) -> CsvCdr | None:
    """A row as a :class:`CsvCdr`; ``None`` for a row that is not a CDR of a known layout."""
    names = columns_for(len(fields), fields)
    if names is None:
        return None
    row = dict(zip(names, fields, strict=True))
    start, end = naive_seconds(row["start"]), naive_seconds(row["end"])
    if start is None or end is None:
        return None
    try:
        duration, billsec = int(row["duration"]), int(row["billsec"])
    except ValueError:
        return None
    return CsvCdr(
        src=row["src"],
        dst=row["dst"],
        channel=row["channel"],
        dstchannel=row["dstchannel"],
        lastapp=row["lastapp"],
        start=start,
        answer=naive_seconds(row["answer"]),
        end=end,
        duration=duration,
        billsec=billsec,
        disposition=row["disposition"],
        uniqueid=row.get("uniqueid", ""),
        linkedid=row.get("linkedid", ""),
        sequence=row.get("sequence", ""),
    )


def read_rows(
    path: Path,
    low: float,
    high: float,
    *,
    keep: Callable[[CsvCdr], bool] | None = None,
    limit: int | None = None,
) -> list[CsvCdr]:
    """The rows whose ``end`` (naive seconds) is in ``[low, high]`` (and that ``keep``
    accepts), up to ``limit`` of them.  Blocking: run it in a worker thread.  The file is
    read as a stream: only the rows kept are in memory."""
    found: list[CsvCdr] = []
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            for fields in csv.reader(handle):
                if len(fields) <= _END:
                    continue
                end = naive_seconds(fields[_END])
                if end is None or not low <= end <= high:
                    continue
                row = parse_row(fields)
                if row is not None and (keep is None or keep(row)):
                    found.append(row)
                    if limit is not None and len(found) >= limit:
                        break
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from err
    except csv.Error as err:
        raise InputError(f"{path}: not a cdr_csv file ({err})") from err
    return found
