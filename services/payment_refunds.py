"""Reserving a refund on an order: the one place that decides how much may still go back.

The order row is locked while the amount is checked and reserved, so two refunds requested at
once cannot together exceed what was paid; a database constraint backs this up.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.payment import RefundInput, out_trade_no, refund_workflow_id
from core.hospitals import HospitalConfig
from core.models import Hospital, PaymentOrder, PaymentRefund

REFUNDABLE_STATUSES = frozenset({"settled", "partially_refunded"})


class NothingToRefund(Exception):
    pass


class RefundNotAllowed(Exception):
    """The order is not in a state that can be refunded (HTTP 409)."""


class RefundTooLarge(Exception):
    def __init__(self, refundable_fen: int) -> None:
        super().__init__(f"at most {refundable_fen} fen can still be refunded")
        self.refundable_fen = refundable_fen


def refundable_fen(order: PaymentOrder) -> int:
    if order.status not in REFUNDABLE_STATUSES:
        return 0
    return order.amount_fen - order.refunded_fen - order.refund_reserved_fen


async def reserve_refund(
    session: AsyncSession,
    *,
    order_id: str,
    refund_id: str,
    amount_fen: int | None,
    reason: str,
    requested_by: str,
) -> RefundInput:
    """The refund saga's input, reserving the amount (all that is left when None). Asking again
    with the same refund id returns the same refund. The caller commits."""
    order = await session.get(PaymentOrder, order_id, with_for_update=True)
    if order is None:
        raise LookupError(f"no payment order {order_id}")
    existing = await session.get(PaymentRefund, refund_id)
    if existing is None:
        if order.status not in REFUNDABLE_STATUSES:
            raise RefundNotAllowed(f"order is {order.status}; only settled orders are refunded")
        left = refundable_fen(order)
        amount = left if amount_fen is None else amount_fen
        if amount_fen is None and left <= 0:
            raise NothingToRefund(order_id)
        if amount > left:
            raise RefundTooLarge(left)
        order.refund_reserved_fen += amount
        existing = PaymentRefund(
            id=refund_id,
            order_id=order.id,
            amount_fen=amount,
            reason=reason[:200],
            requested_by=requested_by[:80],
            workflow_id=refund_workflow_id(refund_id),
        )
        session.add(existing)
        await session.flush()
    hospital = await session.get(Hospital, order.hospital_code)
    config = HospitalConfig.model_validate(hospital.config) if hospital else HospitalConfig()
    return RefundInput(
        refund_id=existing.id,
        order_id=order.id,
        hospital_code=order.hospital_code,
        patient_id=order.patient_id,
        department_code=order.department_code,
        his_order_no=order.his_order_no,
        title=order.title,
        amount_fen=existing.amount_fen,
        reason=existing.reason,
        requested_by=existing.requested_by,
        out_trade_no=out_trade_no(order.id) if order.transaction_id else None,
        self_pay_total_fen=order.self_pay_fen or 0,
        policy=config.payments.policy,
    )
