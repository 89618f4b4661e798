"""Dispatch (派单): who gets an order no nurse took in time. A nurse qualified for the item and
on duty, with the fewest orders in hand; ties go to the one who has waited longest since their
last order, then by id, so the same situation always dispatches the same way."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class NurseLoad:
    staff_id: str
    qualifications: frozenset[str]
    on_duty: bool
    open_orders: int
    last_order_at: datetime | None


def qualified(nurse: NurseLoad, qualification: str | None) -> bool:
    return qualification is None or qualification in nurse.qualifications


def choose_nurse(
    nurses: Iterable[NurseLoad], qualification: str | None, *, exclude: Iterable[str] = ()
) -> str | None:
    left_out = set(exclude)
    candidates = [
        n
        for n in nurses
        if n.on_duty and qualified(n, qualification) and n.staff_id not in left_out
    ]
    if not candidates:
        return None

    def key(nurse: NurseLoad) -> tuple[int, float, str]:
        last = nurse.last_order_at.timestamp() if nurse.last_order_at else float("-inf")
        return (nurse.open_orders, last, nurse.staff_id)

    return min(candidates, key=key).staff_id
