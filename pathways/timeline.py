"""When each step of a pathway falls due, from the anchor (FU-2, FU-3, ED-4, CM-1).

Calendar arithmetic in the hospital's time zone: "1 month after 31 January" is the last day of
February, and ``time_of_day`` pins the local clock time. Pure, so the designer's preview and the
running workflow compute the same timeline.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pathways.definition import Offset, PathwayDefinition, Step


def zone(key: str) -> ZoneInfo:
    """A time zone for workflow code: created here, outside the workflow sandbox, which would
    otherwise hand back a restricted proxy that datetime refuses as a tzinfo."""
    return ZoneInfo(key)


@dataclass(frozen=True)
class Planned:
    step_id: str
    index: int
    due_at: datetime


def add_offset(moment: datetime, offset: Offset, tz: ZoneInfo, times: int = 1) -> datetime:
    """``moment`` plus ``times`` × ``offset``, months by the local calendar."""
    local = moment.astimezone(tz)
    months = offset.months * times
    if months:
        month_index = local.month - 1 + months
        year, month = local.year + month_index // 12, month_index % 12 + 1
        day = min(local.day, calendar.monthrange(year, month)[1])
        local = local.replace(year=year, month=month, day=day)
    span = timedelta(
        weeks=offset.weeks * times,
        days=offset.days * times,
        hours=offset.hours * times,
        minutes=offset.minutes * times,
    )
    # Local wall-clock arithmetic for whole days, then back to UTC.
    return (local + span).astimezone(UTC)


def _at_time(moment: datetime, clock: time | None, tz: ZoneInfo) -> datetime:
    if clock is None:
        return moment
    local = moment.astimezone(tz)
    return datetime.combine(local.date(), clock, tzinfo=tz).astimezone(UTC)


def step_due_times(step: Step, anchor: datetime, tz: ZoneInfo) -> list[datetime]:
    schedule = step.schedule
    if schedule is None:
        return []
    if schedule.offset is not None:
        return [_at_time(add_offset(anchor, schedule.offset, tz), schedule.time_of_day, tz)]
    recurrence = schedule.recurrence
    assert recurrence is not None
    limit = add_offset(anchor, recurrence.until, tz) if recurrence.until else None
    due: list[datetime] = []
    n = 0
    while True:
        # Each occurrence from the anchor, not from the previous one: monthly from 31 January
        # is 28 February, then 31 March, never drifting to the 28th.
        moment = _at_time(
            add_offset(anchor, _combined(recurrence.start, recurrence.every, n), tz),
            schedule.time_of_day,
            tz,
        )
        if recurrence.count is not None and n >= recurrence.count:
            break
        if limit is not None and moment > _at_time(limit, schedule.time_of_day, tz):
            break
        due.append(moment)
        n += 1
    return due


def timeline(definition: PathwayDefinition, anchor: datetime, tz: ZoneInfo) -> list[Planned]:
    """Every scheduled occurrence, in due order (dormant steps start only when activated)."""
    planned = [
        Planned(step.id, index, due)
        for step in definition.steps
        for index, due in enumerate(step_due_times(step, anchor, tz))
    ]
    order = {step.id: i for i, step in enumerate(definition.steps)}
    return sorted(planned, key=lambda p: (p.due_at, order[p.step_id], p.index))


@dataclass(frozen=True)
class PlannedStep:
    """One scheduled occurrence as a designer previews it: what, when, open until when."""

    step_id: str
    index: int
    title: str
    action_type: str
    due_at: datetime
    valid_until: datetime | None
    lost_at: datetime | None
    condition: str | None


def planned_steps(
    definition: PathwayDefinition, anchor: datetime, tz: ZoneInfo
) -> list[PlannedStep]:
    """The timeline with each occurrence's step details and its validity and loss times."""
    planned = []
    for item in timeline(definition, anchor, tz):
        step = definition.step(item.step_id)
        assert step is not None
        valid = add_offset(item.due_at, step.validity, tz) if step.validity else None
        lost = add_offset(item.due_at, step.lost_after, tz) if step.lost_after else valid
        planned.append(
            PlannedStep(
                step_id=item.step_id,
                index=item.index,
                title=step.title,
                action_type=step.action.type,
                due_at=item.due_at,
                valid_until=valid,
                lost_at=lost,
                condition=step.condition,
            )
        )
    return planned


def _combined(start: Offset, every: Offset, n: int) -> Offset:
    return Offset(
        minutes=start.minutes + every.minutes * n,
        hours=start.hours + every.hours * n,
        days=start.days + every.days * n,
        weeks=start.weeks + every.weeks * n,
        months=start.months + every.months * n,
    )
