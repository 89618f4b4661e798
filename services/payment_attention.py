"""What finance staff must look at: money the sagas could not put right by themselves.

- refunds that failed (the provider refused, or the HIS would not record a refund whose
  self-pay part already went back to the patient);
- payments and refunds stuck for a while in a step that retries until it succeeds (the HIS
  confirmation, a compensation, telling the HIS about a refund): the saga keeps trying, but a
  party has been unreachable or refusing for longer than anyone should wait unseen;
- reconciliation days with unresolved discrepancies.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

from pydantic import BaseModel
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Discrepancy, PaymentOrder, PaymentRefund, utcnow
from services.scope import hospital_wide, record_filter
from services.staff import StaffPrincipal

# Saga steps that never give up by themselves (workflows/saga_steps.py: until_done).
RETRYING_ORDER_STEPS = ("confirming", "compensating")
RETRYING_REFUND_STATUSES = ("refunding", "informing_his")


class AttentionItem(BaseModel):
    kind: str  # refund_failed / order_stuck / refund_stuck / reconciliation
    order_id: str | None
    refund_id: str | None
    workflow_id: str | None
    status: str | None
    amount_fen: int | None
    note: str
    since: datetime | date


async def attention(
    session: AsyncSession,
    staff: StaffPrincipal,
    *,
    stuck_after: timedelta,
    hospital_code: str | None = None,
) -> list[AttentionItem]:
    """Orders and refunds within the caller's data scope; reconciliation days, which are
    hospital-wide, only for hospital-wide staff."""
    cutoff = utcnow() - stuck_after
    in_scope = record_filter(staff, PaymentOrder.patient_id, PaymentOrder.department_code)
    items: list[AttentionItem] = []
    refunds = (
        select(PaymentRefund, PaymentOrder)
        .join(PaymentOrder, col(PaymentOrder.id) == col(PaymentRefund.order_id))
        .where(in_scope)
    )
    orders = select(PaymentOrder).where(
        in_scope,
        PaymentOrder.status == "paying",
        col(PaymentOrder.saga_status).in_(RETRYING_ORDER_STEPS),
        col(PaymentOrder.updated_at) <= cutoff,
    )
    if hospital_code is not None:
        refunds = refunds.where(PaymentOrder.hospital_code == hospital_code)
        orders = orders.where(PaymentOrder.hospital_code == hospital_code)
    failed = await session.exec(refunds.where(PaymentRefund.status == "failed"))
    for refund, order in failed.all():
        items.append(
            AttentionItem(
                kind="refund_failed",
                order_id=order.id,
                refund_id=refund.id,
                workflow_id=refund.workflow_id,
                status=refund.status,
                amount_fen=refund.amount_fen,
                note=refund.failure_reason or "",
                since=refund.finished_at or refund.created_at,
            )
        )
    retrying = await session.exec(
        refunds.where(
            col(PaymentRefund.status).in_(RETRYING_REFUND_STATUSES),
            col(PaymentRefund.created_at) <= cutoff,
        )
    )
    for refund, order in retrying.all():
        items.append(
            AttentionItem(
                kind="refund_stuck",
                order_id=order.id,
                refund_id=refund.id,
                workflow_id=refund.workflow_id,
                status=refund.status,
                amount_fen=refund.amount_fen,
                note="退费仍在重试，请在 Temporal UI 查看待处理的步骤",
                since=refund.created_at,
            )
        )
    for order in (await session.exec(orders)).all():
        items.append(
            AttentionItem(
                kind="order_stuck",
                order_id=order.id,
                refund_id=None,
                workflow_id=order.workflow_id,
                status=order.saga_status,
                amount_fen=order.amount_fen,
                note="缴费流程仍在重试，请在 Temporal UI 查看待处理的步骤",
                since=order.updated_at,
            )
        )
    if not hospital_wide(staff):
        return items
    open_findings = await session.exec(
        select(Discrepancy).where(Discrepancy.resolved == False)  # noqa: E712 - SQL, not Python
    )
    per_day = Counter(finding.bill_date for finding in open_findings.all())
    for bill_date, count in sorted(per_day.items()):
        items.append(
            AttentionItem(
                kind="reconciliation",
                order_id=None,
                refund_id=None,
                workflow_id=None,
                status=None,
                amount_fen=None,
                note=f"对账差异 {count} 条未处理",
                since=bill_date,
            )
        )
    return items
