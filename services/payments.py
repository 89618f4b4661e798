"""Payment orders as the API sees them: create one from an HIS order, start its payment saga,
request a refund, accept the provider's payment notifications, start a paid online
consultation. Handlers commit; these functions only flush.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from contracts.payment import (
    CONSULTATION_WORKFLOW,
    PAYMENT_WORKFLOW,
    REFUND_WORKFLOW,
    SIGNAL_PROVIDER_NOTICE,
    ConsultationInput,
    PaymentInput,
    ProviderNotice,
    consultation_workflow_id,
    payment_workflow_id,
    refund_workflow_id,
)
from contracts.search import search_attributes
from core.hospitals import HospitalConfig
from core.logs import get_logger
from core.models import (
    Consultation,
    Hospital,
    Patient,
    PaymentEvent,
    PaymentOrder,
    PaymentRefund,
)
from core.settings import Settings
from integrations.his import HisClient
from integrations.his_charging import HisChargeOrder, HisChargingClient
from integrations.wechatpay import NoticeVerifier
from services import audit
from services.inbound_events import find_event, record_event
from services.patients import fetch_patient, upsert_patient
from services.payment_refunds import reserve_refund
from services.scope import record_filter
from services.search_attributes import for_patient
from services.staff import StaffPrincipal

log = get_logger(__name__)

NOTICE_SOURCE = "wechatpay"
CLOSED_STATUSES = frozenset({"settled", "partially_refunded", "refunded", "failed"})
# Namespaces the refund ids derived from a caller's Idempotency-Key.
_REFUND_NAMESPACE = uuid.UUID("6f1c7d52-5c7e-4f0e-9d0a-2b8e3f1a9c41")


class OrderRejected(Exception):
    """Input that contradicts the HIS (HTTP 422, naming the field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class OrderConflict(Exception):
    """The order's state does not allow this (HTTP 409)."""


@dataclass(frozen=True)
class PaymentContext:
    settings: Settings
    temporal: Client
    his: HisClient
    charging: HisChargingClient
    verifier: NoticeVerifier


async def _config(session: AsyncSession, hospital_code: str) -> HospitalConfig:
    hospital = await session.get(Hospital, hospital_code)
    return HospitalConfig.model_validate(hospital.config) if hospital else HospitalConfig()


async def _live_order(
    session: AsyncSession, hospital_code: str, his_order_no: str
) -> PaymentOrder | None:
    found = await session.exec(
        select(PaymentOrder).where(
            PaymentOrder.hospital_code == hospital_code,
            PaymentOrder.live_his_order_no == his_order_no,
        )
    )
    return found.first()


async def create_order(
    session: AsyncSession,
    ctx: PaymentContext,
    *,
    hospital_code: str,
    his_order_no: str,
    his_patient_id: str,
    amount_fen: int,
    use_insurance: bool,
    created_by: str,
    kind: str | None = None,
) -> tuple[PaymentOrder, bool]:
    """The order for an HIS order, checked against what the HIS holds; (order, created). A
    repeat of the same request returns the live order instead of a second one."""
    existing = await _live_order(session, hospital_code, his_order_no)
    if existing is not None:
        patient = await session.get(Patient, existing.patient_id)
        same = (
            patient is not None
            and patient.his_patient_id == his_patient_id
            and existing.amount_fen == amount_fen
            and (kind is None or existing.kind == kind)
        )
        if not same:
            raise OrderConflict(f"HIS order {his_order_no} already has payment order {existing.id}")
        return existing, False
    his_order = await ctx.charging.get_order(his_order_no)
    if his_order is None:
        raise OrderRejected("his_order_no", f"the HIS has no order '{his_order_no}'")
    if his_order.patient_id != his_patient_id:
        raise OrderRejected("patient_id", f"HIS order {his_order_no} belongs to another patient")
    if his_order.total_fen != amount_fen:
        raise OrderRejected(
            "amount_fen",
            f"amount_fen must equal the HIS amount of order {his_order_no} "
            f"({his_order.total_fen} fen)",
        )
    if kind is not None and his_order.kind != kind:
        raise OrderRejected("his_order_no", f"HIS order {his_order_no} is not a {kind} order")
    if his_order.status != "pending":
        raise OrderConflict(f"HIS order {his_order_no} is {his_order.status}, not payable")
    patient = await upsert_patient(session, await fetch_patient(session, ctx.his, his_patient_id))
    order = PaymentOrder(
        hospital_code=hospital_code,
        his_order_no=his_order_no,
        live_his_order_no=his_order_no,
        patient_id=patient.id,
        department_code=his_order.department_code,
        department_name=his_order.department_name,
        kind=his_order.kind,
        title=his_order.title[:100],
        amount_fen=amount_fen,
        use_insurance=use_insurance,
        created_by=created_by[:80],
    )
    session.add(order)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        # A concurrent request created it first.
        raced = await _live_order(session, hospital_code, his_order_no)
        if raced is None:
            raise
        return raced, False
    audit.record(
        session,
        actor_type="staff",
        actor_id=created_by,
        action="payment.order_created",
        target_type="payment_order",
        target_id=order.id,
        patient_id=order.patient_id,
        his_order_no=his_order_no,
        amount_fen=amount_fen,
    )
    return order, True


async def service_order(
    session: AsyncSession,
    settings: Settings,
    *,
    hospital_code: str,
    charge: HisChargeOrder,
    patient_id: str,
    created_by: str,
) -> PaymentInput:
    """The payment order for a charge the platform itself entered at the HIS (a home-nursing
    visit), and its saga's input; the same charge again finds the same order."""
    order = await _live_order(session, hospital_code, charge.order_no)
    if order is None:
        order = PaymentOrder(
            hospital_code=hospital_code,
            his_order_no=charge.order_no,
            live_his_order_no=charge.order_no,
            patient_id=patient_id,
            department_code=charge.department_code,
            department_name=charge.department_name,
            kind=charge.kind,
            title=charge.title[:100],
            amount_fen=charge.total_fen,
            use_insurance=False,
            created_by=created_by[:80],
            status="paying",
        )
        order.workflow_id = payment_workflow_id(order.id)
        session.add(order)
        await session.flush()
    return await _payment_input(session, settings, order)


def order_attributes(paying: PaymentInput) -> TypedSearchAttributes:
    return search_attributes(
        patient=paying.his_patient_id,
        department=paying.department_code,
        hospital=paying.hospital_code,
        order_no=paying.his_order_no,
    )


async def payment_input(
    session: AsyncSession, ctx: PaymentContext, order: PaymentOrder
) -> PaymentInput:
    return await _payment_input(session, ctx.settings, order)


async def _payment_input(
    session: AsyncSession, settings: Settings, order: PaymentOrder
) -> PaymentInput:
    patient = await session.get(Patient, order.patient_id)
    assert patient is not None
    config = await _config(session, order.hospital_code)
    return PaymentInput(
        order_id=order.id,
        hospital_code=order.hospital_code,
        patient_id=order.patient_id,
        his_patient_id=patient.his_patient_id,
        department_code=order.department_code,
        his_order_no=order.his_order_no,
        kind=order.kind,
        title=order.title,
        amount_fen=order.amount_fen,
        use_insurance=order.use_insurance,
        notify_url=settings.wechatpay_notify_url,
        policy=config.payments.policy,
    )


async def lock_order(session: AsyncSession, order_id: str) -> PaymentOrder | None:
    return await session.get(PaymentOrder, order_id, with_for_update=True)


async def start_payment(
    session: AsyncSession, ctx: PaymentContext, order: PaymentOrder, *, by: str
) -> PaymentOrder:
    """Starts the saga of a created order; asking again while it runs is answered with it."""
    if order.status == "paying":
        return order
    if order.status in CLOSED_STATUSES:
        raise OrderConflict(
            f"order {order.id} is {order.status}; a failed order is closed, create a new one"
            if order.status == "failed"
            else f"order {order.id} is already {order.status}"
        )
    if order.kind == "consultation":
        raise OrderConflict("consultation orders are paid by requesting the consultation")
    order.status = "paying"
    order.workflow_id = payment_workflow_id(order.id)
    await session.flush()
    paying = await payment_input(session, ctx, order)
    await ctx.temporal.start_workflow(
        PAYMENT_WORKFLOW,
        paying,
        id=order.workflow_id,
        task_queue=ctx.settings.temporal_task_queue,
        search_attributes=order_attributes(paying),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    audit.record(
        session,
        actor_type="staff",
        actor_id=by,
        action="payment.started",
        target_type="payment_order",
        target_id=order.id,
        patient_id=order.patient_id,
    )
    return order


def refund_id_for(order_id: str, idempotency_key: str) -> str:
    """One refund per order and key: a retried request maps to the refund it already made."""
    return str(uuid.uuid5(_REFUND_NAMESPACE, f"{order_id}:{idempotency_key}"))


async def request_refund(
    session: AsyncSession,
    ctx: PaymentContext,
    *,
    order_id: str,
    amount_fen: int,
    reason: str,
    refund_id: str,
    by: str,
) -> PaymentRefund:
    refund_input = await reserve_refund(
        session,
        order_id=order_id,
        refund_id=refund_id,
        amount_fen=amount_fen,
        reason=reason,
        requested_by=by,
    )
    if refund_input.amount_fen != amount_fen:
        raise OrderConflict(f"refund {refund_id} was requested with another amount")
    await ctx.temporal.start_workflow(
        REFUND_WORKFLOW,
        refund_input,
        id=refund_workflow_id(refund_id),
        task_queue=ctx.settings.temporal_task_queue,
        search_attributes=await for_patient(
            session,
            refund_input.patient_id,
            department=refund_input.department_code,
            hospital=refund_input.hospital_code,
            order_no=refund_input.his_order_no,
        ),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    audit.record(
        session,
        actor_type="staff",
        actor_id=by,
        action="payment.refund_requested",
        target_type="payment_order",
        target_id=order_id,
        patient_id=refund_input.patient_id,
        refund_id=refund_id,
        amount_fen=amount_fen,
    )
    refund = await session.get(PaymentRefund, refund_id)
    assert refund is not None
    return refund


async def start_consultation(
    session: AsyncSession,
    ctx: PaymentContext,
    *,
    order: PaymentOrder,
    question: str,
    by: str,
) -> Consultation:
    """Pays the consultation fee and waits for a doctor (PAY-7); idempotent per order."""
    found = await session.exec(select(Consultation).where(Consultation.order_id == order.id))
    existing = found.first()
    if existing is not None:
        return existing
    if order.status != "created":
        raise OrderConflict(f"order {order.id} is already {order.status}")
    config = await _config(session, order.hospital_code)
    consultation = Consultation(
        order_id=order.id,
        hospital_code=order.hospital_code,
        patient_id=order.patient_id,
        department_code=order.department_code,
        question=question[:1000],
        workflow_id="",
    )
    consultation.workflow_id = consultation_workflow_id(consultation.id)
    order.status = "paying"
    order.workflow_id = payment_workflow_id(order.id)
    session.add(consultation)
    await session.flush()
    paying = await payment_input(session, ctx, order)
    await ctx.temporal.start_workflow(
        CONSULTATION_WORKFLOW,
        ConsultationInput(
            consultation_id=consultation.id,
            payment=paying,
            accept_within_seconds=config.payments.consultation_accept_seconds,
        ),
        id=consultation.workflow_id,
        task_queue=ctx.settings.temporal_task_queue,
        search_attributes=order_attributes(paying),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    audit.record(
        session,
        actor_type="staff",
        actor_id=by,
        action="consultation.requested",
        target_type="consultation",
        target_id=consultation.id,
        patient_id=order.patient_id,
        order_id=order.id,
    )
    return consultation


async def accept_notice(
    session: AsyncSession, ctx: PaymentContext, headers: Mapping[str, str], body: bytes
) -> str:
    """Hands a genuine payment notification to its saga, once. Raises InvalidNotice for forged
    or stale ones. The outcome is for the log; the provider only needs to hear "received"."""
    notice_id, event_type, trade = ctx.verifier.open(headers, body)
    if await find_event(session, NOTICE_SOURCE, notice_id) is not None:
        return "duplicate"
    order = await session.get(PaymentOrder, trade.attach) if trade.attach else None
    if order is None:
        by_trade = await session.exec(
            select(PaymentOrder).where(PaymentOrder.out_trade_no == trade.out_trade_no)
        )
        order = by_trade.first()
    outcome = "delivered"
    if order is None:
        # Nothing of ours: the daily reconciliation lists it for people to look at.
        log.warning("payment notice for an unknown order", out_trade_no=trade.out_trade_no)
        outcome = "unknown_order"
    else:
        notice = ProviderNotice(
            notice_id=notice_id,
            out_trade_no=trade.out_trade_no,
            trade_state=trade.trade_state,
            transaction_id=trade.transaction_id,
            amount_fen=trade.amount_fen,
            success_time=trade.success_time,
        )
        try:
            await ctx.temporal.get_workflow_handle(payment_workflow_id(order.id)).signal(
                SIGNAL_PROVIDER_NOTICE, notice
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise  # Temporal is unavailable: the provider retries later
            # The saga has finished; a payment after its window was refunded by it.
            outcome = "saga_finished"
    digest = hashlib.sha256(body).hexdigest()
    if not await record_event(session, NOTICE_SOURCE, notice_id, event_type[:32], digest):
        outcome = "duplicate"
    log.info("payment notice", notice_id=notice_id, outcome=outcome, event_type=event_type)
    return outcome


async def order_trail(
    session: AsyncSession, order_id: str
) -> tuple[list[PaymentRefund], list[PaymentEvent]]:
    refunds = await session.exec(
        select(PaymentRefund)
        .where(PaymentRefund.order_id == order_id)
        .order_by(col(PaymentRefund.created_at))
    )
    events = await session.exec(
        select(PaymentEvent)
        .where(PaymentEvent.order_id == order_id)
        .order_by(col(PaymentEvent.at), col(PaymentEvent.seq))
    )
    return list(refunds.all()), list(events.all())


async def list_orders(
    session: AsyncSession,
    staff: StaffPrincipal,
    *,
    hospital_code: str | None,
    status: str | None,
    kind: str | None,
    patient_id: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    offset: int,
) -> list[PaymentOrder]:
    query = select(PaymentOrder).where(
        record_filter(staff, PaymentOrder.patient_id, PaymentOrder.department_code)
    )
    if hospital_code:
        query = query.where(PaymentOrder.hospital_code == hospital_code)
    if status:
        query = query.where(PaymentOrder.status == status)
    if kind:
        query = query.where(PaymentOrder.kind == kind)
    if patient_id:
        patient = await session.exec(select(Patient.id).where(Patient.his_patient_id == patient_id))
        query = query.where(PaymentOrder.patient_id == (patient.first() or ""))
    if created_from:
        query = query.where(col(PaymentOrder.created_at) >= created_from)
    if created_to:
        query = query.where(col(PaymentOrder.created_at) < created_to)
    found = await session.exec(
        query.order_by(col(PaymentOrder.created_at).desc()).offset(offset).limit(limit)
    )
    return list(found.all())
