"""A site's working day in wall-clock terms: workdays, dialing windows, checkpoints.

Times in the policy are local wall-clock times; they become aware datetimes of the site's zone
on each date, and every duration is measured between POSIX timestamps, so a DST switch day has
the right length (subtracting two aware datetimes of one zone would compare wall clocks).
"""

from __future__ import annotations

import datetime as dt
import enum

from ctid.policy.schema import WEEKDAYS, Site


class Checkpoint(enum.StrEnum):
    PACE = "pace"
    REPORT = "report"
    END_OF_DAY = "end_of_day"
    GRACE_END = "grace_end"


def local_time(site: Site, day: dt.date, at: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, at, tzinfo=site.tz)


def local_day(site: Site, now: dt.datetime) -> dt.date:
    return now.astimezone(site.tz).date()


def is_workday(site: Site, day: dt.date) -> bool:
    if day in site.holidays:
        return False
    return day in site.extra_workdays or WEEKDAYS[day.weekday()] in site.workdays


def makeup_day_after(site: Site, day: dt.date) -> dt.date:
    """The next ``makeup_weekday`` after ``day`` that is not a holiday."""
    target = WEEKDAYS.index(site.makeup_weekday)
    candidate = day + dt.timedelta(days=(target - day.weekday() - 1) % 7 + 1)
    while candidate in site.holidays:
        candidate += dt.timedelta(days=7)
    return candidate


def end_of_day(site: Site, day: dt.date) -> dt.datetime:
    return local_time(site, day, site.end_of_day)


def dialing_progress(site: Site, day: dt.date, now: dt.datetime) -> float:
    """Share of the day's dialing time (0–1) elapsed at ``now``; the pro-rata expectation."""
    stamp = now.timestamp()
    elapsed = total = 0.0
    for start, end in site.dialing_windows:
        begin = local_time(site, day, start).timestamp()
        finish = local_time(site, day, end).timestamp()
        total += finish - begin
        elapsed += min(max(stamp - begin, 0.0), finish - begin)
    return elapsed / total if total > 0 else 1.0


def checkpoints(site: Site, day: dt.date) -> list[tuple[dt.datetime, Checkpoint]]:
    eod = end_of_day(site, day)
    # Wall-clock arithmetic on purpose: "10 minutes before 18:00" is 17:50 on the clock.
    points = [(local_time(site, day, at), Checkpoint.PACE) for at in site.checkpoints]
    points.append((eod - dt.timedelta(minutes=site.report_before_eod_minutes), Checkpoint.REPORT))
    points.append((eod, Checkpoint.END_OF_DAY))
    points.append((eod + dt.timedelta(minutes=site.grace_minutes), Checkpoint.GRACE_END))
    return sorted(points, key=lambda point: point[0].timestamp())


def checkpoints_between(
    site: Site, since: dt.datetime, until: dt.datetime
) -> list[tuple[dt.date, dt.datetime, Checkpoint]]:
    """Checkpoints in ``(since, until]``, in order."""
    low, high = since.timestamp(), until.timestamp()
    found: list[tuple[dt.date, dt.datetime, Checkpoint]] = []
    day = local_day(site, since)
    while day <= local_day(site, until):
        found.extend(
            (day, at, kind) for at, kind in checkpoints(site, day) if low < at.timestamp() <= high
        )
        day += dt.timedelta(days=1)
    return found


def next_checkpoint(site: Site, after: dt.datetime) -> dt.datetime:
    day = local_day(site, after)
    while True:  # every day has an end of day, so this ends within two iterations
        for at, _ in checkpoints(site, day):
            if at.timestamp() > after.timestamp():
                return at
        day += dt.timedelta(days=1)
