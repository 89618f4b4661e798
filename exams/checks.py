"""The checks the exam interfaces make before anything is saved: the customer a push names is
the patient on record (US-H2..H4, code 401), and a booking date lies between today and 14 days
from now in the hospital's calendar (US-K2, code 201)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

BOOKING_WINDOW_DAYS = 14
# How the tender names the customer's fields, for the 401 message.
FIELD_NAMES = {"name": "姓名", "sex": "性别", "birth_date": "出生日期"}


@dataclass(frozen=True)
class OnRecord:
    name: str
    sex: str | None  # "M" / "F"
    birth_date: date | None


def mismatched_fields(record: OnRecord, *, name: str, sex: str, birth_date: date) -> list[str]:
    """The customer fields (by the tender's names) that differ from the record; a field the
    record does not hold cannot be checked and does not count against the push."""
    wrong = []
    if name.strip() != record.name.strip():
        wrong.append("name")
    if record.sex is not None and {"1": "M", "2": "F"}.get(sex) != record.sex:
        wrong.append("sex")
    if record.birth_date is not None and birth_date != record.birth_date:
        wrong.append("birth_date")
    return [FIELD_NAMES[f] for f in wrong]


def booking_window(today: date) -> tuple[date, date]:
    return today, today + timedelta(days=BOOKING_WINDOW_DAYS)


def within_window(day: date, today: date) -> bool:
    start, end = booking_window(today)
    return start <= day <= end
