"""A complaint's life (SAT-3): opened → acknowledged by a handler of the department it is
assigned to → resolved with an outcome the patient is told → rated by the patient (or left
unrated when the rating window closes) → closed. Missing the acknowledgement deadline escalates
the case to the department head; missing the resolution deadline, to the quality office.
Praise needs no resolution: acknowledged, it is closed. Each check names why a step does not
apply, in the words staff see."""

from __future__ import annotations

from typing import Literal

ComplaintStatus = Literal["open", "acknowledged", "resolved", "closed"]
Kind = Literal["complaint", "praise"]
Source = Literal["survey", "followup", "staff", "patient"]
Category = Literal[
    "attitude",  # 服务态度
    "waiting",  # 等候时间
    "treatment",  # 诊疗质量
    "billing",  # 收费
    "environment",  # 环境设施
    "communication",  # 沟通解释
    "other",
]
CATEGORY_NAMES: dict[str, str] = {
    "attitude": "服务态度",
    "waiting": "等候时间",
    "treatment": "诊疗质量",
    "billing": "收费",
    "environment": "环境设施",
    "communication": "沟通解释",
    "other": "其他",
}
# Who the case is with: the department's handlers, then their head, then the quality office.
Escalation = Literal["department", "department_head", "quality_office"]
ESCALATION_ORDER: tuple[Escalation, ...] = ("department", "department_head", "quality_office")
ESCALATION_NAMES: dict[str, str] = {
    "department": "科室",
    "department_head": "科室主任",
    "quality_office": "质控办",
}


class StepRefused(Exception):
    """The step does not apply to the case as it stands; the message says why."""


def check_acknowledge(status: ComplaintStatus) -> None:
    if status != "open":
        raise StepRefused("该投诉已受理" if status != "closed" else "该投诉已结案")


def check_resolve(status: ComplaintStatus, kind: Kind) -> None:
    if kind == "praise":
        raise StepRefused("表扬无需处理结果")
    if status == "open":
        raise StepRefused("请先受理该投诉")
    if status != "acknowledged":
        raise StepRefused("该投诉已处理" if status == "resolved" else "该投诉已结案")


def check_reassign(status: ComplaintStatus, current: str, department: str) -> None:
    if status not in ("open", "acknowledged"):
        raise StepRefused("已处理的投诉不能转派")
    if department == current:
        raise StepRefused("投诉已在该科室")


def check_rating(status: ComplaintStatus, rated: bool) -> None:
    if rated:
        raise StepRefused("您已评价过")
    if status != "resolved":
        raise StepRefused("该投诉尚未处理完毕" if status != "closed" else "该投诉已结案")


def escalated(current: Escalation) -> Escalation:
    """One level up; the quality office is the last."""
    index = ESCALATION_ORDER.index(current)
    return ESCALATION_ORDER[min(index + 1, len(ESCALATION_ORDER) - 1)]
