"""Home nursing's pure rules: which steps apply when (and why not, in the caller's words), what
a cancellation refunds at each stage, who a dispatched order goes to, and which alarms text the
head nurse."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nursing.alarms import texted
from nursing.dispatch import NurseLoad, choose_nurse
from nursing.lifecycle import (
    StepRefused,
    cancellation_refund,
    check_assessment,
    check_patient_signature,
    check_rating,
    check_take,
    check_transfer,
    check_visit_step,
)


def test_only_a_qualified_nurse_takes_an_order_still_open() -> None:
    check_take("waiting_nurse", has_nurse=False, qualified=True)
    with pytest.raises(StepRefused, match="已被接单"):
        check_take("waiting_nurse", has_nurse=True, qualified=True)
    with pytest.raises(StepRefused, match="资质"):
        check_take("waiting_nurse", has_nurse=False, qualified=False)
    with pytest.raises(StepRefused, match="不可接单"):
        check_take("paying", has_nurse=False, qualified=True)


def test_an_order_is_handed_on_only_before_the_nurse_arrives() -> None:
    check_transfer("accepted", by_current=True, same=False, qualified=True)
    check_transfer("departed", by_current=True, same=False, qualified=True)
    with pytest.raises(StepRefused, match="到达后不能转单"):
        check_transfer("arrived", by_current=True, same=False, qualified=True)
    with pytest.raises(StepRefused, match="只有接单护士"):
        check_transfer("accepted", by_current=False, same=False, qualified=True)
    with pytest.raises(StepRefused, match="转给自己"):
        check_transfer("accepted", by_current=True, same=True, qualified=True)


def test_the_visit_is_recorded_in_order() -> None:
    status = "accepted"
    for step in ("depart", "arrive", "start", "finish"):
        status = check_visit_step(status, step, by_current=True)  # type: ignore[arg-type]
    assert status == "served"
    with pytest.raises(StepRefused, match="不能记录该步骤"):
        check_visit_step("accepted", "arrive", by_current=True)
    with pytest.raises(StepRefused, match="只有接单护士"):
        check_visit_step("accepted", "depart", by_current=False)
    check_patient_signature("served")
    with pytest.raises(StepRefused, match="服务完成后才能签名"):
        check_patient_signature("in_service")
    check_assessment("signed", by_current=True)
    with pytest.raises(StepRefused, match="患者签名后"):
        check_assessment("served", by_current=True)
    check_rating("assessed", rated=False)
    with pytest.raises(StepRefused, match="已评价"):
        check_rating("completed", rated=True)


@pytest.mark.parametrize(
    ("status", "by_staff", "refunded"),
    [
        ("waiting_nurse", False, 20000),
        ("accepted", False, 20000),
        ("departed", False, 15000),  # the home-visit fee is kept
        ("arrived", True, 15000),
        ("in_service", True, 15000),
    ],
)
def test_what_a_cancellation_refunds(status: str, by_staff: bool, refunded: int) -> None:
    assert cancellation_refund(status, 20000, 5000, by_staff=by_staff) == refunded  # type: ignore[arg-type]


def test_a_patient_cannot_cancel_once_the_nurse_is_there() -> None:
    with pytest.raises(StepRefused, match="请联系护士站"):
        cancellation_refund("arrived", 20000, 5000, by_staff=False)
    with pytest.raises(StepRefused, match="已完成或已取消"):
        cancellation_refund("completed", 20000, 5000, by_staff=True)


def test_dispatch_goes_to_the_least_loaded_qualified_nurse_on_duty() -> None:
    earlier = datetime(2026, 12, 1, 8, tzinfo=UTC)
    later = datetime(2026, 12, 2, 8, tzinfo=UTC)
    nurses = [
        NurseLoad("n1", frozenset({"picc"}), on_duty=True, open_orders=2, last_order_at=earlier),
        NurseLoad("n2", frozenset({"picc"}), on_duty=True, open_orders=1, last_order_at=later),
        NurseLoad("n3", frozenset({"picc"}), on_duty=True, open_orders=1, last_order_at=earlier),
        NurseLoad("n4", frozenset(), on_duty=True, open_orders=0, last_order_at=None),
        NurseLoad("n5", frozenset({"picc"}), on_duty=False, open_orders=0, last_order_at=None),
    ]
    assert choose_nurse(nurses, "picc") == "n3"  # fewest orders, waited longest
    assert choose_nurse(nurses, None) == "n4"
    assert choose_nurse(nurses, "picc", exclude=["n3"]) == "n2"
    assert choose_nurse(nurses, "stoma") is None


def test_warnings_and_important_alarms_text_the_head_nurse() -> None:
    assert not texted("notice")
    assert texted("warning")
    assert texted("important")
