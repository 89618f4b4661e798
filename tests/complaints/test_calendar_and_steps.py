"""The complaint's rules without a server: working days in the hospital's calendar (weekends,
public holidays, make-up working days, the same local time), and which steps apply when."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from complaints.calendar import add_working_days, zone
from complaints.lifecycle import (
    StepRefused,
    check_acknowledge,
    check_rating,
    check_reassign,
    check_resolve,
    escalated,
)

TZ = zone("Asia/Shanghai")


def _local(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


@pytest.mark.parametrize(
    ("start", "days", "end"),
    [
        # Monday 10:00 + 5 working days: the next Monday 10:00.
        (_local(2026, 3, 2, 10, 0), 5, _local(2026, 3, 9, 10, 0)),
        # Thursday + 2: over the weekend to Monday.
        (_local(2026, 3, 5, 16, 30), 2, _local(2026, 3, 9, 16, 30)),
        # Opened on a Saturday: counted from Monday's start.
        (_local(2026, 3, 7, 22, 0), 1, _local(2026, 3, 10, 0, 0)),
    ],
)
def test_working_days_skip_weekends(start: datetime, days: int, end: datetime) -> None:
    assert add_working_days(start, days, TZ) == end


def test_holidays_are_skipped_and_make_up_days_count() -> None:
    # 2026 National Day: Oct 1–7 off, Saturday Oct 10 worked in their place (调休).
    holidays = [date(2026, 10, d) for d in range(1, 8)]
    start = _local(2026, 9, 30, 9, 0)  # Wednesday before the holiday
    assert add_working_days(start, 1, TZ, holidays=holidays) == _local(2026, 10, 8, 9, 0)
    assert add_working_days(
        start, 3, TZ, holidays=holidays, workdays=[date(2026, 10, 10)]
    ) == _local(2026, 10, 10, 9, 0)


def test_the_result_is_in_the_hospitals_zone_whatever_the_start_zone() -> None:
    start = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
    end = add_working_days(start, 5, TZ)
    assert end.astimezone(UTC) == datetime(2026, 3, 9, 2, 0, tzinfo=UTC)


def test_which_steps_apply() -> None:
    check_acknowledge("open")
    with pytest.raises(StepRefused, match="已受理"):
        check_acknowledge("acknowledged")
    with pytest.raises(StepRefused, match="请先受理"):
        check_resolve("open", "complaint")
    with pytest.raises(StepRefused, match="表扬无需"):
        check_resolve("acknowledged", "praise")
    check_resolve("acknowledged", "complaint")
    with pytest.raises(StepRefused, match="已在该科室"):
        check_reassign("open", "cardiology", "cardiology")
    with pytest.raises(StepRefused, match="不能转派"):
        check_reassign("resolved", "cardiology", "orthopaedics")
    with pytest.raises(StepRefused, match="尚未处理完毕"):
        check_rating("acknowledged", rated=False)
    with pytest.raises(StepRefused, match="已评价"):
        check_rating("resolved", rated=True)
    assert escalated("department") == "department_head"
    assert escalated("department_head") == "quality_office"
    assert escalated("quality_office") == "quality_office"
