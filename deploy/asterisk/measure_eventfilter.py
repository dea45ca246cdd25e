#!/usr/bin/env python3
"""Measure what an AMI user's ``read`` classes and ``eventfilter`` lines remove from a stream.

Feed it a recorded AMI byte stream (``.ami`` or ``.ami.gz``, recorded with ``read = all`` and no
filter) and a ``manager.conf``; it replays Asterisk's own decision for every event frame and
prints frames and bytes before and after, and what is left per event name::

    python deploy/asterisk/measure_eventfilter.py tests/captures/mixed_busy_period.ami.gz

The decision follows Asterisk 22's ``main/manager.c`` (``process_events``, ``should_send_event``,
``filter_cmp_fn``, ``match_eventdata``, ``manager_add_filter``):

1. read permission: every class in the event's ``Privilege`` header (``all`` is decoration)
   must be in the user's ``read`` (``(readperm & category) == category``);
2. filters: none -> send; only include filters -> send if one matches; only exclude filters ->
   send unless one matches; both -> send if an include matches and no exclude does;
3. a filter matches when its ``name(...)`` equals the event name (exact, case-sensitive) and its
   pattern matches either the whole event text (no ``header(...)``) or the value of a line that
   starts with ``Header:``; ``method`` is regex (default for legacy filters), exact,
   starts_with, ends_with, contains or none.  Legacy filters (``eventfilter = [!]regex``) are
   regexes over the whole event text, ``!`` meaning exclude.

One approximation: Asterisk compiles regexes as POSIX extended (``regcomp``), this script uses
Python's ``re`` (same for plain text, ``.*``, ``|``, ``[...]``, anchors; POSIX classes such as
``[[:digit:]]`` are not supported).  Frames that are not events (the banner, ``Response:``
frames) are never filtered by Asterisk and are counted as kept.  Standard library only, so it
runs on a PBX host without ctid installed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Method = Literal["regex", "exact", "starts_with", "ends_with", "contains", "none"]
METHODS: tuple[Method, ...] = ("regex", "exact", "starts_with", "ends_with", "contains", "none")
TERMINATOR = b"\r\n\r\n"
BANNER_PREFIX = b"Asterisk Call Manager/"


@dataclass(frozen=True, slots=True)
class EventFilter:
    """One ``eventfilter`` line, parsed the way ``manager_add_filter`` parses it."""

    exclude: bool
    method: Method
    pattern: str
    name: str | None = None
    header: str | None = None  # with its trailing ':' as Asterisk stores it
    regex: re.Pattern[str] | None = None

    def matches(self, name: str, text: str) -> bool:
        if self.name is not None and self.name != name:
            return False
        if self.header is None:
            return self._match(text)
        for line in text.splitlines():
            if line.startswith(self.header):
                value = line[len(self.header) :].lstrip(" \t")
                if value and self._match(value):
                    return True
        return False

    def _match(self, data: str) -> bool:
        if self.method == "regex":
            assert self.regex is not None
            return self.regex.search(data) is not None
        if self.method == "exact":
            return data == self.pattern
        if self.method == "starts_with":
            return data.startswith(self.pattern)
        if self.method == "ends_with":
            return data.endswith(self.pattern)
        if self.method == "contains":
            return self.pattern in data
        return True  # "none": the name/header criteria alone decide


def parse_filter(key: str, value: str) -> EventFilter:
    """Parse ``eventfilter[(criteria)] = [!]pattern``; ``ValueError`` where Asterisk refuses it."""
    exclude = value.startswith("!")
    pattern = value[1:] if exclude else value
    options_at = key.find("(")
    if options_at < 0:
        if not pattern:
            raise ValueError(f"{key} = {value}: legacy filter with no pattern")
        return EventFilter(exclude, "regex", pattern, regex=re.compile(pattern))
    body = key[options_at + 1 :].strip()
    if not body.endswith(")"):
        raise ValueError(f"{key}: filter options not formatted correctly")
    name: str | None = None
    header: str | None = None
    method: Method = "none"
    # strtok_r(temp, " ,)"): "action(exclude),name(VarSet))" -> "action(exclude", "name(VarSet"
    for option in filter(None, re.split(r"[ ,)]", body)):
        keyword, _, argument = option.partition("(")
        argument = argument.strip()
        if not argument:
            raise ValueError(f"{key}: {keyword!r} has no value")
        if keyword.startswith("action") and argument in ("include", "exclude"):
            exclude = argument == "exclude"
        elif keyword.startswith("name"):
            name = argument
        elif keyword.startswith("header"):
            header = argument if argument.endswith(":") else argument + ":"
        elif keyword.startswith("method") and argument in METHODS:
            method = METHODS[METHODS.index(argument)]  # narrows str to Method
        else:
            raise ValueError(f"{key}: unknown option {option!r}")
    if not pattern and method != "none":
        raise ValueError(f"{key}: method {method} needs a pattern")
    if pattern and method == "none":
        raise ValueError(f"{key} = {value}: method none takes no pattern")
    if name is None and header is None and method == "none":
        raise ValueError(f"{key}: no name, header or pattern")
    regex = re.compile(pattern) if method == "regex" else None
    return EventFilter(exclude, method, pattern, name, header, regex)


@dataclass(frozen=True, slots=True)
class ManagerUser:
    name: str
    read: frozenset[str]
    write: frozenset[str]
    filters: tuple[EventFilter, ...] = ()

    @property
    def includes(self) -> tuple[EventFilter, ...]:
        return tuple(f for f in self.filters if not f.exclude)

    @property
    def excludes(self) -> tuple[EventFilter, ...]:
        return tuple(f for f in self.filters if f.exclude)

    def may_read(self, classes: Iterable[str]) -> bool:
        return "all" in self.read or set(classes) <= self.read

    def filter_passes(self, name: str, text: str) -> bool:
        """``should_send_event``: include filters first, then exclude filters."""
        includes, excludes = self.includes, self.excludes
        if includes and not any(f.matches(name, text) for f in includes):
            return False
        return not any(f.matches(name, text) for f in excludes)

    def receives(self, name: str, classes: Iterable[str], text: str) -> bool:
        return self.may_read(classes) and self.filter_passes(name, text)


def read_asterisk_conf(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of an Asterisk config file: ``;`` comments, ``[name](+)`` additions and
    ``#include``/``#tryinclude`` (globbed, relative to the file's directory).  Enough for
    manager.conf; templates and ``#exec`` are not supported."""
    sections: dict[str, list[tuple[str, str]]] = {}
    _read_into(path, sections, None)
    return sections


def _read_into(
    path: Path, sections: dict[str, list[tuple[str, str]]], current: str | None
) -> str | None:
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = re.sub(r"(?<!\\);.*", "", raw).replace("\\;", ";").strip()
        if not line:
            continue
        include = re.match(r'#(try)?include\s+"?([^"]+)"?$', line)
        if include:
            # Asterisk globs the name (sorted); #include of nothing fails, #tryinclude does not.
            targets = sorted(path.parent.glob(include.group(2)))
            if not targets and not include.group(1):
                raise FileNotFoundError(path.parent / include.group(2))
            for target in targets:
                current = _read_into(target, sections, current)
            continue
        header = re.match(r"\[([^\]]+)\](\(.*\))?$", line)
        if header:
            current = header.group(1)
            sections.setdefault(current, [])
            continue
        key, sep, value = line.partition("=")
        if not sep or current is None:
            raise ValueError(f"{path}: cannot parse {raw!r}")
        sections[current].append((key.strip(), value.lstrip(">").strip()))
    return current


def load_user(conf: Path, user: str = "ctid") -> ManagerUser:
    sections = read_asterisk_conf(conf)
    if user not in sections:
        raise KeyError(f"{conf}: no [{user}] section")
    read: set[str] = set()
    write: set[str] = set()
    filters: list[EventFilter] = []
    for key, value in sections[user]:
        low = key.lower()
        # Asterisk keeps the last read/write line, not their union.
        if low == "read":
            read = {c.strip() for c in value.split(",") if c.strip()}
        elif low == "write":
            write = {c.strip() for c in value.split(",") if c.strip()}
        elif low.startswith("eventfilter"):
            filters.append(parse_filter(key, value))
    return ManagerUser(user, frozenset(read), frozenset(write), tuple(filters))


def read_capture(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def split_frames(data: bytes) -> Iterator[bytes]:
    """The banner line, then every frame with its blank-line terminator (a tail is dropped)."""
    start = 0
    if data.startswith(BANNER_PREFIX):
        start = data.index(b"\r\n") + 2
        yield data[:start]
    while True:
        end = data.find(TERMINATOR, start)
        if end < 0:
            return
        yield data[start : end + len(TERMINATOR)]
        start = end + len(TERMINATOR)


@dataclass(frozen=True, slots=True)
class EventHead:
    name: str
    classes: frozenset[str]


def event_head(frame: bytes) -> EventHead | None:
    """Event name and Privilege classes of an event frame; ``None`` for anything else."""
    if not frame.startswith(b"Event:"):
        return None
    lines = frame.split(b"\r\n", 2)
    name = lines[0][len(b"Event:") :].strip().decode("utf-8", "replace")
    classes: frozenset[str] = frozenset()
    if len(lines) > 1 and lines[1].startswith(b"Privilege:"):
        text = lines[1][len(b"Privilege:") :].decode("ascii", "replace")
        classes = frozenset(c.strip() for c in text.split(",") if c.strip()) - {"all"}
    return EventHead(name, classes)


@dataclass(slots=True)
class Tally:
    frames: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.frames += 1
        self.bytes += size


@dataclass(slots=True)
class Measurement:
    recorded: Tally = field(default_factory=Tally)
    after_read: Tally = field(default_factory=Tally)
    after_filter: Tally = field(default_factory=Tally)
    non_events: Tally = field(default_factory=Tally)
    kept: Counter[str] = field(default_factory=Counter)
    kept_bytes: Counter[str] = field(default_factory=Counter)
    dropped_by_read: Counter[str] = field(default_factory=Counter)
    dropped_by_filter: Counter[str] = field(default_factory=Counter)
    classes: dict[str, frozenset[str]] = field(default_factory=dict)

    def add(self, user: ManagerUser, frame: bytes) -> None:
        size = len(frame)
        self.recorded.add(size)
        head = event_head(frame)
        if head is None:  # banner and action responses: never filtered
            for tally in (self.after_read, self.after_filter, self.non_events):
                tally.add(size)
            return
        self.classes.setdefault(head.name, head.classes)
        if not user.may_read(head.classes):
            self.dropped_by_read[head.name] += 1
            return
        self.after_read.add(size)
        if not user.filter_passes(head.name, frame.decode("utf-8", "replace")):
            self.dropped_by_filter[head.name] += 1
            return
        self.after_filter.add(size)
        self.kept[head.name] += 1
        self.kept_bytes[head.name] += size


def measure(data: bytes, user: ManagerUser) -> Measurement:
    result = Measurement()
    for frame in split_frames(data):
        result.add(user, frame)
    return result


def _share(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:5.1f} %" if whole else "    -"


def render(result: Measurement, user: ManagerUser, source: str) -> str:
    total = result.recorded
    rows = [
        ("as recorded (read = all, no filter)", total),
        (f"read = {','.join(sorted(user.read))}", result.after_read),
        (f"read + {len(user.filters)} eventfilter lines", result.after_filter),
    ]
    out = [f"{source}: AMI user [{user.name}]", ""]
    out.append(f"{'':40} {'frames':>8} {'bytes':>11}   of bytes")
    out += [
        f"{label:40} {t.frames:8,} {t.bytes:11,}   {_share(t.bytes, total.bytes)}"
        for label, t in rows
    ]
    other = result.non_events
    out.append(
        f"{'  of which not events (banner, responses)':40} {other.frames:8,} {other.bytes:11,}"
    )
    out += ["", "kept, per event (frames, bytes):"]
    for name, count in result.kept.most_common():
        out.append(f"  {name:28} {count:7,} {result.kept_bytes[name]:11,}")
    out += ["", "removed by the read classes (event: class, frames):"]
    for name, count in result.dropped_by_read.most_common():
        out.append(f"  {name:28} {','.join(sorted(result.classes[name])):10} {count:7,}")
    out += ["", "removed by eventfilter (event: class, frames):"]
    for name, count in result.dropped_by_filter.most_common():
        out.append(f"  {name:28} {','.join(sorted(result.classes[name])):10} {count:7,}")
    return "\n".join(out) + "\n"


def as_json(result: Measurement, user: ManagerUser, source: str) -> str:
    def tally(t: Tally) -> dict[str, int]:
        return {"frames": t.frames, "bytes": t.bytes}

    doc = {
        "source": source,
        "user": user.name,
        "read": sorted(user.read),
        "filters": len(user.filters),
        "recorded": tally(result.recorded),
        "after_read": tally(result.after_read),
        "after_filter": tally(result.after_filter),
        "non_events": tally(result.non_events),
        "kept": {
            n: {"frames": c, "bytes": result.kept_bytes[n]} for n, c in result.kept.most_common()
        },
        "dropped_by_read": dict(result.dropped_by_read.most_common()),
        "dropped_by_filter": dict(result.dropped_by_filter.most_common()),
    }
    return json.dumps(doc, indent=2) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("captures", nargs="+", type=Path, metavar="CAPTURE", help=".ami or .ami.gz")
    parser.add_argument("--conf", type=Path, default=here / "manager.conf", help="manager.conf")
    parser.add_argument("--user", default="ctid", help="AMI user section (default: ctid)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    try:
        user = load_user(args.conf, args.user)
        data = b"".join(read_capture(path) for path in args.captures)
    except (OSError, KeyError, ValueError) as err:
        print(f"measure_eventfilter: {err}", file=sys.stderr)
        return 2
    result = measure(data, user)
    source = " + ".join(str(p) for p in args.captures)
    sys.stdout.write(as_json(result, user, source) if args.json else render(result, user, source))
    return 0


if __name__ == "__main__":
    sys.exit(main())
