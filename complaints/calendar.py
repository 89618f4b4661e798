"""Working days in the hospital's calendar: Monday to Friday, minus public holidays, plus the
weekend days made working days in their place (调休). A deadline of "5 working days" ends at the
same local time on the fifth working day after the start."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


def is_working_day(day: date, holidays: Collection[date], workdays: Collection[date]) -> bool:
    if day in workdays:
        return True
    return day.weekday() < 5 and day not in holidays


def add_working_days(
    start: datetime,
    days: int,
    tz: ZoneInfo,
    *,
    holidays: Collection[date] = (),
    workdays: Collection[date] = (),
) -> datetime:
    """The moment ``days`` working days after ``start``, at the same local time. A start on a
    day off counts from the next working day's beginning."""
    local = start.astimezone(tz)
    day = local.date()
    if not is_working_day(day, holidays, workdays):
        while not is_working_day(day, holidays, workdays):
            day += timedelta(days=1)
        local = datetime.combine(day, datetime.min.time(), tzinfo=tz)
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_working_day(day, holidays, workdays):
            counted += 1
    # Built from the wall-clock time, so a daylight-saving change in between keeps it.
    return datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=tz)


def zone(key: str) -> ZoneInfo:
    """A time zone for workflow code: created here, outside the workflow sandbox, which would
    otherwise hand back a restricted proxy that datetime refuses as a tzinfo."""
    return ZoneInfo(key)
