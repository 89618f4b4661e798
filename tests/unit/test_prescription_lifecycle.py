"""Every change the prescription lifecycle allows, and every refusal with its exact message."""

from __future__ import annotations

from typing import Literal, get_args

import pytest

from core.hospitals import RxStatus
from prescriptions.lifecycle import (
    AWAITING_ENTERPRISE,
    CANCELLABLE,
    TransitionRefused,
    check_cancellation,
    check_decision,
    check_enterprise_status,
    check_payment,
    check_refund,
    check_revision,
    conclusion_at_deadline,
    next_enterprise_status,
)

STATUSES: tuple[RxStatus, ...] = get_args(RxStatus)
REFUNDABLE: list[RxStatus] = ["paid", "dispatched", "dispensing", "decocting"]
ALLOWED = "paid、dispatched、dispensing、decocting"


def refusal(check: object, *args: object, **kwargs: object) -> str:
    assert callable(check)
    with pytest.raises(TransitionRefused) as refused:
        check(*args, **kwargs)
    return str(refused.value)


# --- a pharmacist's decision ---------------------------------------------------------------


def test_a_decision_on_the_current_open_round_is_allowed() -> None:
    check_decision("reviewing", 2, current_round=2, concluded=False)


@pytest.mark.parametrize("status", [s for s in STATUSES if s != "reviewing"])
def test_no_decision_outside_review(status: RxStatus) -> None:
    assert (
        refusal(check_decision, status, 1, current_round=1, concluded=False)
        == f"处方当前状态为 {status}，不在审方中"
    )


def test_no_decision_before_the_base_rules_finished() -> None:
    assert (
        refusal(check_decision, "reviewing", 1, current_round=None, concluded=False)
        == "系统规则审核尚未完成，请稍后再审"
    )


def test_no_decision_on_another_round() -> None:
    assert (
        refusal(check_decision, "reviewing", 1, current_round=2, concluded=False)
        == "第1轮已结束，当前为第2轮"
    )


def test_one_decision_per_round() -> None:
    assert (
        refusal(check_decision, "reviewing", 2, current_round=2, concluded=True)
        == "第2轮已有审核结论"
    )


# --- the doctor's revision -------------------------------------------------------------------


def test_a_returned_prescription_is_revised_once() -> None:
    check_revision("returned", revision_pending=False)
    assert (
        refusal(check_revision, "returned", revision_pending=True)
        == "处方当前状态为 returned，只有退回医生的处方可以修改"
    )


@pytest.mark.parametrize("status", [s for s in STATUSES if s != "returned"])
def test_only_a_returned_prescription_is_revised(status: RxStatus) -> None:
    assert (
        refusal(check_revision, status, revision_pending=False)
        == f"处方当前状态为 {status}，只有退回医生的处方可以修改"
    )


# --- cancellation --------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["reviewing", "returned", "approved"])
def test_cancelled_before_payment(status: RxStatus) -> None:
    check_cancellation(status, cancellation_pending=False)
    assert (
        refusal(check_cancellation, status, cancellation_pending=True)
        == f"处方当前状态为 {status}，不能取消（已缴费的处方请走退费）"
    )


@pytest.mark.parametrize("status", [s for s in STATUSES if s not in CANCELLABLE])
def test_not_cancelled_once_paid_or_finished(status: RxStatus) -> None:
    assert (
        refusal(check_cancellation, status, cancellation_pending=False)
        == f"处方当前状态为 {status}，不能取消（已缴费的处方请走退费）"
    )


# --- payment ---------------------------------------------------------------------------------


def test_an_approved_prescription_is_paid() -> None:
    assert check_payment("approved", "P1", recorded_payment_id=None) is False


@pytest.mark.parametrize("status", STATUSES)
def test_the_same_payment_again_is_a_redelivery_in_any_status(status: RxStatus) -> None:
    assert check_payment(status, "P1", recorded_payment_id="P1") is True


def test_a_second_payment_is_refused() -> None:
    assert refusal(check_payment, "approved", "P2", recorded_payment_id="P1") == "处方已缴费"


@pytest.mark.parametrize("status", [s for s in STATUSES if s != "approved"])
def test_no_payment_before_approval(status: RxStatus) -> None:
    assert (
        refusal(check_payment, status, "P1", recorded_payment_id=None)
        == f"处方当前状态为 {status}，审方通过后才能缴费"
    )


# --- the enterprise's statuses -----------------------------------------------------------------

SEQUENCES = {
    ("delivery", False): ["dispensing", "shipped", "delivered"],
    ("delivery", True): ["dispensing", "decocting", "shipped", "delivered"],
    ("pickup", False): ["dispensing", "ready_for_pickup", "picked_up"],
    ("pickup", True): ["dispensing", "decocting", "ready_for_pickup", "picked_up"],
}
# The prescription's status while the enterprise's latest status is ``current``.
STATUS_AFTER: dict[str | None, RxStatus] = {
    None: "dispatched",
    "dispensing": "dispensing",
    "decocting": "decocting",
    "shipped": "shipped",
    "ready_for_pickup": "ready_for_pickup",
}


def enterprise(
    status: RxStatus,
    reported: str,
    current: str | None,
    mode: str = "delivery",
    decoct: bool = False,
) -> bool:
    return check_enterprise_status(
        status, reported, enterprise="ENT", mode=mode, decoction=decoct, current=current
    )


@pytest.mark.parametrize(("mode", "decoct"), list(SEQUENCES))
def test_each_status_follows_the_one_before_it(mode: str, decoct: bool) -> None:
    current: str | None = None
    for reported in SEQUENCES[mode, decoct]:
        assert enterprise(STATUS_AFTER[current], reported, current, mode, decoct) is False
        current = reported


@pytest.mark.parametrize(("mode", "decoct"), list(SEQUENCES))
def test_every_skip_or_reversal_is_refused(mode: str, decoct: bool) -> None:
    sequence = SEQUENCES[mode, decoct]
    everything = [
        "dispensing",
        "decocting",
        "shipped",
        "delivered",
        "ready_for_pickup",
        "picked_up",
    ]
    for position, current in enumerate([None, *sequence[:-1]]):
        expected = sequence[position]
        for reported in everything:
            if reported in (expected, current):
                continue
            assert (
                refusal(enterprise, STATUS_AFTER[current], reported, current, mode, decoct)
                == f"状态顺序错误：{current or '已派单'} 之后应为 {expected}，收到 {reported}"
            )


def test_a_repeated_status_is_a_redelivery() -> None:
    assert enterprise("shipped", "shipped", "shipped") is True


def test_a_status_reported_after_the_last_is_refused() -> None:
    # The workflow ends at the last status; a queued report past it names no successor.
    assert (
        refusal(enterprise, "shipped", "shipped", "delivered")
        == "状态顺序错误：delivered 之后应为 None，收到 shipped"
    )


@pytest.mark.parametrize("status", [s for s in STATUSES if s not in AWAITING_ENTERPRISE])
def test_no_enterprise_status_outside_fulfilment(status: RxStatus) -> None:
    assert (
        refusal(enterprise, status, "dispensing", None)
        == f"处方当前状态为 {status}，不接受配送企业状态"
    )


def test_no_enterprise_status_without_an_enterprise() -> None:
    assert (
        refusal(
            check_enterprise_status,
            "dispatched",
            "dispensing",
            enterprise=None,
            mode="delivery",
            decoction=False,
            current=None,
        )
        == "处方当前状态为 dispatched，不接受配送企业状态"
    )


def test_next_enterprise_status() -> None:
    sequence = SEQUENCES["pickup", True]
    assert next_enterprise_status(sequence, None) == "dispensing"
    assert next_enterprise_status(sequence, "decocting") == "ready_for_pickup"
    assert next_enterprise_status(sequence, "picked_up") is None
    assert next_enterprise_status(sequence, "shipped") == "dispensing"  # not of this sequence


# --- refunds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", REFUNDABLE)
def test_refunded_in_the_statuses_the_hospital_allows(status: RxStatus) -> None:
    assert check_refund(status, "R1", recorded_refund_id=None, refundable=REFUNDABLE) is False


@pytest.mark.parametrize("status", [s for s in STATUSES if s not in REFUNDABLE])
def test_refused_in_any_other_status(status: RxStatus) -> None:
    assert (
        refusal(check_refund, status, "R1", recorded_refund_id=None, refundable=REFUNDABLE)
        == f"处方当前状态为 {status}，本院仅允许在以下状态退费：{ALLOWED}"
    )


def test_a_hospital_may_allow_refunds_later() -> None:
    allowed: list[RxStatus] = ["shipped", "delivered"]
    assert check_refund("delivered", "R1", recorded_refund_id=None, refundable=allowed) is False
    assert (
        refusal(check_refund, "paid", "R1", recorded_refund_id=None, refundable=allowed)
        == "处方当前状态为 paid，本院仅允许在以下状态退费：shipped、delivered"
    )


@pytest.mark.parametrize("status", STATUSES)
def test_the_same_refund_again_is_a_redelivery(status: RxStatus) -> None:
    assert check_refund(status, "R1", recorded_refund_id="R1", refundable=REFUNDABLE) is True


def test_a_second_refund_is_refused() -> None:
    assert (
        refusal(check_refund, "paid", "R2", recorded_refund_id="R1", refundable=REFUNDABLE)
        == "处方已在退费中"
    )


# --- the system's conclusion at the deadline ---------------------------------------------------


@pytest.mark.parametrize("policy", ["return_to_doctor", "keep_waiting"])
def test_nothing_found_is_approved_at_the_deadline(
    policy: Literal["return_to_doctor", "keep_waiting"],
) -> None:
    assert conclusion_at_deadline([], policy) == ("approved", "timeout")


def test_findings_go_back_to_the_doctor_by_default() -> None:
    assert conclusion_at_deadline(["十八反（甘草、甘遂）", "重味"], "return_to_doctor") == (
        "rejected",
        "审方超时，系统规则发现问题，退回医生：十八反（甘草、甘遂）；重味",
    )


def test_the_returned_reason_is_cut_to_500_characters() -> None:
    outcome = conclusion_at_deadline(["问" * 600], "return_to_doctor")
    assert outcome is not None
    assert len(outcome[1]) == 500


def test_findings_keep_waiting_when_the_hospital_says_so() -> None:
    assert conclusion_at_deadline(["重味"], "keep_waiting") is None
