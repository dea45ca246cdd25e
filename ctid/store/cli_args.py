"""Arguments shared by the store commands: which database, which day, which seats."""

from __future__ import annotations

import argparse
import datetime as dt
import time

from ctid.config import Settings
from ctid.errors import InputError
from ctid.store.directory import SeatInfo
from ctid.store.engine import store_url
from ctid.store.settings import StoreSettings


def store_settings(settings: Settings) -> StoreSettings:
    """``settings.store`` once it is part of :class:`Settings`; defaults until then."""
    value = getattr(settings, "store", None)
    return value if isinstance(value, StoreSettings) else StoreSettings()


def database_url(args: argparse.Namespace, settings: Settings) -> str:
    return str(args.db) if args.db else store_url(store_settings(settings))


def parse_day(text: str | None, settings: Settings) -> dt.date:
    if not text:
        return dt.datetime.fromtimestamp(time.time(), settings.site.tz).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError as err:
        raise InputError(f"--date {text!r}: not a date, use YYYY-MM-DD") from err


def seat_directory(settings: Settings) -> list[SeatInfo]:
    return [SeatInfo(s.id, s.name, s.team, s.kind, s.hire_date) for s in settings.seats]
