"""A home-nursing order's life (NUR-2): the patient's identity is checked, they sign the consent
and pay; a qualified nurse takes it (接单) or it is dispatched to one, and a nurse may hand it to
another (转单) until they reach the patient; departure, arrival, start and end of the service are
recorded; the patient signs at the end, the nurse writes the assessment, the patient rates.

Each check names why a step does not apply, in the words the caller sees (staff or patient).
What a cancellation refunds depends on how far the order got: all of it until the nurse sets
out, the price less the item's home-visit fee once they have, nothing once they are there.
"""

from __future__ import annotations

from typing import Literal

OrderStatus = Literal[
    "verifying",  # the real-name check
    "paying",
    "waiting_nurse",  # paid: open for a qualified nurse to take, or dispatched
    "accepted",
    "departed",
    "arrived",
    "in_service",
    "served",  # the service is finished: the patient signs
    "signed",  # the nurse writes the assessment
    "assessed",  # the patient rates (or the rating window ends)
    "completed",
    "cancelled",  # before payment, or refunded in full or in part
    "failed",  # identity not confirmed, or payment failed
]
# Statuses in which the nurse is on the way or at the patient's home: an alarm applies.
VISITING: tuple[OrderStatus, ...] = ("departed", "arrived", "in_service")
# The visit steps a nurse records, each from the status before it.
VISIT_STEPS: dict[str, tuple[OrderStatus, OrderStatus]] = {
    "depart": ("accepted", "departed"),
    "arrive": ("departed", "arrived"),
    "start": ("arrived", "in_service"),
    "finish": ("in_service", "served"),
}
STATUS_NAMES: dict[str, str] = {
    "verifying": "实名认证中",
    "paying": "待支付",
    "waiting_nurse": "等待护士接单",
    "accepted": "护士已接单",
    "departed": "护士已出发",
    "arrived": "护士已到达",
    "in_service": "服务中",
    "served": "服务完成，待您签名",
    "signed": "护士填写护理记录中",
    "assessed": "待评价",
    "completed": "已完成",
    "cancelled": "已取消",
    "failed": "未成功",
}


class StepRefused(Exception):
    """The step does not apply to the order as it stands; the message says why."""


def check_take(status: OrderStatus, has_nurse: bool, qualified: bool) -> None:
    if status != "waiting_nurse" or has_nurse:
        raise StepRefused("该订单已被接单" if has_nurse else "该订单当前不可接单")
    if not qualified:
        raise StepRefused("您不具备该护理项目的资质")


def check_transfer(status: OrderStatus, by_current: bool, same: bool, qualified: bool) -> None:
    if status not in ("accepted", "departed"):
        raise StepRefused("护士到达后不能转单" if status in VISITING else "该订单当前不可转单")
    if not by_current:
        raise StepRefused("只有接单护士可以转单")
    if same:
        raise StepRefused("不能转给自己")
    if not qualified:
        raise StepRefused("接收护士不具备该护理项目的资质")


def check_visit_step(status: OrderStatus, step: str, by_current: bool) -> OrderStatus:
    """The status the step leads to; StepRefused when it is out of order or not theirs."""
    if step not in VISIT_STEPS:
        raise StepRefused(f"未知的服务步骤：{step}")
    before, after = VISIT_STEPS[step]
    if not by_current:
        raise StepRefused("只有接单护士可以记录服务过程")
    if status != before:
        raise StepRefused(f"当前状态为「{STATUS_NAMES[status]}」，不能记录该步骤")
    return after


def check_patient_signature(status: OrderStatus) -> None:
    if status != "served":
        raise StepRefused("服务完成后才能签名" if status in VISITING else "无需签名")


def check_assessment(status: OrderStatus, by_current: bool) -> None:
    if not by_current:
        raise StepRefused("只有接单护士可以填写护理记录")
    if status != "signed":
        raise StepRefused("患者签名后才能填写护理记录")


def check_rating(status: OrderStatus, rated: bool) -> None:
    if rated:
        raise StepRefused("您已评价过")
    if status not in ("assessed", "completed"):
        raise StepRefused("服务完成后才能评价")


def cancellation_refund(
    status: OrderStatus, price_fen: int, visit_fee_fen: int, *, by_staff: bool
) -> int:
    """What a cancellation refunds, in fen; StepRefused when the order cannot be cancelled.
    Staff may cancel a visit under way (an emergency, a refusal at the door): the home-visit fee
    is kept as when the nurse set out."""
    if status in ("verifying", "paying", "waiting_nurse", "accepted"):
        return price_fen
    if status == "departed":
        return max(price_fen - visit_fee_fen, 0)
    if status in ("arrived", "in_service") and by_staff:
        return max(price_fen - visit_fee_fen, 0)
    if status in ("arrived", "in_service"):
        raise StepRefused("护士已到达，如需取消请联系护士站")
    raise StepRefused("该订单已完成或已取消")
