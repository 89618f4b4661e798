"""A prescription's lifecycle rules (RX-1..RX-8): when each change may apply, and which status may
follow which.

Pure: the workflow asks these before it accepts a pharmacist's decision, a doctor's revision, a
cancellation, a payment, an enterprise's status or a refund, in its update validators and again
in the handlers. A refusal is ``TransitionRefused`` with the message the caller is shown; a check
that returns True has recognised a redelivery of what was already recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from core.hospitals import RxStatus
from prescriptions.dispatch import enterprise_sequence

# Before payment a prescription is cancelled; once paid, it is refunded.
CANCELLABLE: frozenset[str] = frozenset({"reviewing", "returned", "approved"})
# Statuses in which the service enterprise reports its progress.
AWAITING_ENTERPRISE: tuple[RxStatus, ...] = (
    "dispatched",
    "dispensing",
    "decocting",
    "shipped",
    "ready_for_pickup",
)


class TransitionRefused(ValueError):
    """The change does not apply to the prescription as it stands; the message says why."""


def check_decision(
    status: RxStatus, decided_round: int, *, current_round: int | None, concluded: bool
) -> None:
    """A pharmacist's decision is for the current round under review, once.

    ``current_round`` is None before the base rules have finished the first round; ``concluded``
    says the current round has a conclusion or a decision already."""
    if status != "reviewing":
        raise TransitionRefused(f"处方当前状态为 {status}，不在审方中")
    if current_round is None:
        raise TransitionRefused("系统规则审核尚未完成，请稍后再审")
    if decided_round != current_round:
        raise TransitionRefused(f"第{decided_round}轮已结束，当前为第{current_round}轮")
    if concluded:
        raise TransitionRefused(f"第{current_round}轮已有审核结论")


def check_revision(status: RxStatus, *, revision_pending: bool) -> None:
    """Only a prescription returned to the doctor is revised, once per return."""
    if status != "returned" or revision_pending:
        raise TransitionRefused(f"处方当前状态为 {status}，只有退回医生的处方可以修改")


def check_cancellation(status: RxStatus, *, cancellation_pending: bool) -> None:
    """Cancelled before payment only, once; a paid prescription is refunded instead."""
    if status not in CANCELLABLE or cancellation_pending:
        raise TransitionRefused(f"处方当前状态为 {status}，不能取消（已缴费的处方请走退费）")


def check_payment(status: RxStatus, payment_id: str, *, recorded_payment_id: str | None) -> bool:
    """Paid once approved; True when this payment was already recorded (a redelivery)."""
    if recorded_payment_id is not None:
        if recorded_payment_id == payment_id:
            return True
        raise TransitionRefused("处方已缴费")
    if status != "approved":
        raise TransitionRefused(f"处方当前状态为 {status}，审方通过后才能缴费")
    return False


def next_enterprise_status(sequence: Sequence[str], current: str | None) -> str | None:
    """The status that must follow ``current`` (None: just dispatched); None after the last."""
    position = sequence.index(current) + 1 if current in sequence else 0
    return sequence[position] if position < len(sequence) else None


def check_enterprise_status(
    status: RxStatus,
    reported: str,
    *,
    enterprise: str | None,
    mode: str,
    decoction: bool,
    current: str | None,
) -> bool:
    """An enterprise's statuses come in their one valid order for the delivery mode and
    decoction; True for a repeat of ``current`` (the latest reported, None: none yet)."""
    if enterprise is None or status not in AWAITING_ENTERPRISE:
        raise TransitionRefused(f"处方当前状态为 {status}，不接受配送企业状态")
    if reported == current:
        return True
    expected = next_enterprise_status(enterprise_sequence(mode, decoction), current)
    if reported != expected:
        raise TransitionRefused(
            f"状态顺序错误：{current or '已派单'} 之后应为 {expected}，收到 {reported}"
        )
    return False


def check_refund(
    status: RxStatus,
    refund_id: str,
    *,
    recorded_refund_id: str | None,
    refundable: Sequence[RxStatus],
) -> bool:
    """Refunded once, in the statuses the hospital allows; True for a redelivery."""
    if recorded_refund_id is not None:
        if recorded_refund_id == refund_id:
            return True
        raise TransitionRefused("处方已在退费中")
    if status not in refundable:
        allowed = "、".join(refundable)
        raise TransitionRefused(f"处方当前状态为 {status}，本院仅允许在以下状态退费：{allowed}")
    return False


def conclusion_at_deadline(
    problems: Sequence[str], on_timeout_with_findings: Literal["return_to_doctor", "keep_waiting"]
) -> tuple[Literal["approved", "rejected"], str] | None:
    """The system's conclusion when a round's deadline passes with no decision: (outcome,
    reason), or None when the prescription keeps waiting for a pharmacist.

    Approved when the base rules found nothing; otherwise returned to the doctor with the
    problems, unless the hospital chose to keep it waiting (never approved silently)."""
    if not problems:
        return "approved", "timeout"
    if on_timeout_with_findings == "return_to_doctor":
        return "rejected", f"审方超时，系统规则发现问题，退回医生：{'；'.join(problems)}"[:500]
    return None
