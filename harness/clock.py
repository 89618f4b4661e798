"""Where a time-skipping test's clock starts.

A test on the time-skipping server first skips to a fixed local time in the hospital's zone, and
the test process's own clock (API, services, simulators in-process) travels there with it, so the
outcome never depends on the hour, the date or the length of the month in which the suite runs.

``CAREPATH_TEST_START`` moves that starting point, to run the suite as if it started then:

- ``HH:MM``: the next such local time, e.g. ``23:30``;
- ``DD HH:MM``: the next day DD of a month at that time; ``31 23:30`` is the last evening of a
  31-day month, ``28 02:00`` a night that may be February's last.

The default is the 15th at 09:00, a quiet mid-month morning.
"""

from __future__ import annotations

import calendar
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine
from temporalio.testing import WorkflowEnvironment

START_VARIABLE = "CAREPATH_TEST_START"
DEFAULT_START = "15 09:00"
HOSPITAL_ZONE = ZoneInfo("Asia/Shanghai")

_FORMAT = re.compile(r"^(?:(?P<day>\d{1,2})\s+)?(?P<hour>\d{1,2}):(?P<minute>\d{2})$")


@dataclass(frozen=True)
class StartTime:
    hour: int
    minute: int
    day: int | None = None

    @classmethod
    def parse(cls, text: str) -> StartTime:
        match = _FORMAT.match(text.strip())
        if match is None:
            raise ValueError(f"{START_VARIABLE}={text!r}: expected 'HH:MM' or 'DD HH:MM'")
        day = int(match["day"]) if match["day"] else None
        start = cls(hour=int(match["hour"]), minute=int(match["minute"]), day=day)
        if not (0 <= start.hour < 24 and 0 <= start.minute < 60) or not (
            day is None or 1 <= day <= 31
        ):
            raise ValueError(f"{START_VARIABLE}={text!r}: no such day or time")
        return start

    def next_after(self, moment: datetime) -> datetime:
        """The first moment strictly after ``moment`` that matches, in the hospital's zone."""
        local = moment.astimezone(HOSPITAL_ZONE)
        if self.day is None:
            candidate = self._at(local.date())
            return candidate if candidate > local else self._at(local.date() + timedelta(days=1))
        year, month = local.year, local.month
        while True:
            if self.day <= calendar.monthrange(year, month)[1]:  # 31 April does not exist
                candidate = self._at(date(year, month, self.day))
                if candidate > local:
                    return candidate
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def _at(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, self.hour, self.minute, tzinfo=HOSPITAL_ZONE)


def configured_start() -> StartTime:
    return StartTime.parse(os.environ.get(START_VARIABLE) or DEFAULT_START)


@asynccontextmanager
async def clock_started(env: WorkflowEnvironment) -> AsyncIterator[datetime]:
    """Skips ``env`` to the configured start and lets this process's clock travel with it (it
    keeps ticking). Yields the start. Later skips move only the server's clock, as before."""
    now = await env.get_current_time()
    start = configured_start().next_after(now)
    await env.sleep(start - now)
    # The server's clock now runs at the real pace plus a fixed offset; give this process the
    # same offset. Taking the real time before the call errs on the side of this clock running
    # a few milliseconds ahead, never behind (a deadline must never look further away here than
    # it is in the workflow).
    before = datetime.now(UTC)
    offset = await env.get_current_time() - before
    with time_machine.travel(datetime.now(UTC) + offset, tick=True) as traveller:
        # time-machine's clock starts ticking at its first reading, not on entry: read it now,
        # or whatever runs before the test's first reading (a database clone) is lost.
        traveller.time_ns()
        yield start
