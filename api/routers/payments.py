"""Payments API (PAY-1..PAY-8): create and pay orders, follow them, refund them, list them, and
read the daily reconciliation.

Writes come from the hospital's patient-facing app or self-service kiosks (integration
accounts) and from administrators; every response is the order as the database projects its
saga, so a client can poll it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from temporalio.service import RPCError

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_visible, require
from api.schemas import links
from contracts.payment import ReconcileSummary
from core.logs import get_logger
from core.models import (
    Discrepancy,
    PaymentEvent,
    PaymentOrder,
    PaymentRefund,
    Reconciliation,
)
from core.validation import Code, Count, Key, SaneDate, SaneDateTime, Text
from integrations.his import HisUnavailable
from services import audit, payment_attention, reconciliation
from services.patients import UnknownPatient
from services.payment_refunds import RefundNotAllowed, RefundTooLarge, refundable_fen
from services.payments import (
    OrderConflict,
    OrderRejected,
    create_order,
    list_orders,
    lock_order,
    order_trail,
    refund_id_for,
    request_refund,
    start_payment,
)
from services.staff import StaffPrincipal

router = APIRouter(prefix="/api/payments", tags=["payments"])
log = get_logger(__name__)

WriterDep = Annotated[StaffPrincipal, Depends(require(Permission.PAYMENTS_WRITE))]
RefunderDep = Annotated[StaffPrincipal, Depends(require(Permission.PAYMENTS_REFUND))]
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.PAYMENTS_READ))]
AdminDep = Annotated[StaffPrincipal, Depends(require(Permission.PAYMENTS_RECONCILE))]


async def _visible(
    order: PaymentOrder | None, session: SessionDep, staff: StaffPrincipal
) -> PaymentOrder:
    """The order, if it exists and is in the caller's data scope (else 404)."""
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such payment order")
    await ensure_visible(
        session, staff, patient_id=order.patient_id, department_code=order.department_code
    )
    return order


class OrderCreate(BaseModel):
    his_order_no: Code = Field(min_length=1, max_length=64)
    patient_id: Code = Field(min_length=1, max_length=64, description="the patient's HIS id")
    amount_fen: int = Field(gt=0, le=100_000_000, description="must equal the HIS amount")
    use_insurance: bool = Field(default=True, description="settle the insured part (医保)")
    hospital_code: Code | None = Field(default=None, max_length=32)
    pay: bool = Field(default=False, description="start paying at once")


class RefundCreate(BaseModel):
    amount_fen: int = Field(gt=0, le=100_000_000)
    reason: Annotated[Text, Field(min_length=1, max_length=200)]


class RefundOut(BaseModel):
    id: str
    amount_fen: int
    status: str
    insurance_fen: int | None
    self_pay_fen: int | None
    reason: str
    failure_reason: str | None
    provider_refund_id: str | None
    his_refund_no: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: PaymentRefund) -> RefundOut:
        return cls.model_validate(row, from_attributes=True)


class EventOut(BaseModel):
    status: str
    note: str | None
    at: datetime

    @classmethod
    def of(cls, row: PaymentEvent) -> EventOut:
        return cls.model_validate(row, from_attributes=True)


class OrderOut(BaseModel):
    id: str
    hospital_code: str
    his_order_no: str
    kind: str
    title: str
    department_code: str
    amount_fen: int
    status: str
    saga_status: str | None
    scenario: str | None
    insurance_fen: int | None
    self_pay_fen: int | None
    pay_url: str | None
    pay_deadline_at: datetime | None
    transaction_id: str | None
    receipt_no: str | None
    failure_reason: str | None
    compensations: list[dict[str, Any]]
    refunded_fen: int
    refundable_fen: int
    workflow_id: str | None
    created_at: datetime
    settled_at: datetime | None
    refunds: list[RefundOut] = Field(default_factory=list)
    events: list[EventOut] = Field(default_factory=list)

    @classmethod
    def of(
        cls,
        row: PaymentOrder,
        refunds: list[PaymentRefund] | None = None,
        events: list[PaymentEvent] | None = None,
    ) -> OrderOut:
        return cls(
            **row.model_dump(exclude={"refunds", "events"}),
            refundable_fen=refundable_fen(row),
            refunds=[RefundOut.of(r) for r in refunds or []],
            events=[EventOut.of(e) for e in events or []],
        )


def _field_error(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body", field), "msg": message}])


def _unavailable(exc: Exception) -> HTTPException:
    log.warning("payment request not accepted", error=str(exc))
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "HIS or workflow service unavailable")


async def _detailed(session: SessionDep, order: PaymentOrder) -> OrderOut:
    refunds, events = await order_trail(session, order.id)
    return OrderOut.of(order, refunds, events)


@router.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    responses=links(
        201,
        "id",
        ("GET", "/api/payments/orders/{order_id}", "order_id"),
        ("POST", "/api/payments/orders/{order_id}/pay", "order_id"),
        ("POST", "/api/payments/orders/{order_id}/refunds", "order_id"),
    ),
)
async def create(
    body: OrderCreate,
    response: Response,
    container: ContainerDep,
    session: SessionDep,
    staff: WriterDep,
) -> OrderOut:
    hospital = body.hospital_code or container.settings.default_hospital_code
    ctx = container.payments
    try:
        order, created = await create_order(
            session,
            ctx,
            hospital_code=hospital,
            his_order_no=body.his_order_no,
            his_patient_id=body.patient_id,
            amount_fen=body.amount_fen,
            use_insurance=body.use_insurance,
            created_by=f"staff:{staff.id}",
        )
        if body.pay:
            locked = await lock_order(session, order.id)
            assert locked is not None
            order = await start_payment(session, ctx, locked, by=f"staff:{staff.id}")
        await session.commit()
    except OrderRejected as exc:
        raise _field_error(exc.field, str(exc)) from exc
    except UnknownPatient as exc:
        raise _field_error("patient_id", str(exc)) from exc
    except OrderConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except (HisUnavailable, RPCError) as exc:
        raise _unavailable(exc) from exc
    if not created:
        response.status_code = status.HTTP_200_OK
    await session.refresh(order)
    return await _detailed(session, order)


@router.post("/orders/{order_id}/pay", status_code=status.HTTP_202_ACCEPTED)
async def pay(
    order_id: Key, container: ContainerDep, session: SessionDep, staff: WriterDep
) -> OrderOut:
    order = await _visible(await lock_order(session, order_id), session, staff)
    try:
        order = await start_payment(session, container.payments, order, by=f"staff:{staff.id}")
        await session.commit()
    except OrderConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except RPCError as exc:
        raise _unavailable(exc) from exc
    await session.refresh(order)
    return await _detailed(session, order)


@router.get("/orders/{order_id}")
async def get_order(order_id: Key, session: SessionDep, staff: ReaderDep) -> OrderOut:
    order = await _visible(await session.get(PaymentOrder, order_id), session, staff)
    return await _detailed(session, order)


@router.get("/orders")
async def search_orders(
    session: SessionDep,
    staff: ReaderDep,
    status_: Annotated[Key | None, Query(alias="status")] = None,
    kind: Key | None = None,
    patient_id: Annotated[Key | None, Query(description="the patient's HIS id")] = None,
    hospital_code: Key | None = None,
    created_from: SaneDateTime | None = None,
    created_to: SaneDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[Count, Query()] = 0,
) -> list[OrderOut]:
    rows = await list_orders(
        session,
        staff,
        hospital_code=hospital_code,
        status=status_,
        kind=kind,
        patient_id=patient_id,
        created_from=created_from,
        created_to=created_to,
        limit=limit,
        offset=offset,
    )
    return [OrderOut.of(row) for row in rows]


@router.post(
    "/orders/{order_id}/refunds",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        409: {"description": "The key was used for this order with another amount"},
        422: {"description": "A field is invalid, or the Idempotency-Key header is missing"},
    },
)
async def refund(
    order_id: Key,
    body: RefundCreate,
    container: ContainerDep,
    session: SessionDep,
    staff: RefunderDep,
    idempotency_key: Annotated[
        str,
        Header(
            min_length=1,
            max_length=128,
            description="Required: one key per refund the cashier intends. A retry with the "
            "same key (after a timeout, a double click) returns the same refund instead of "
            "paying a second one.",
        ),
    ],
) -> RefundOut:
    """Refunds part or all of a settled order. Money moves, so the request must carry an
    ``Idempotency-Key``; orders, payments and consultations are idempotent on the HIS order
    number instead."""
    # Locked here already: the refund reserves against what this read sees.
    await _visible(await lock_order(session, order_id), session, staff)
    refund_id = refund_id_for(order_id, idempotency_key)
    try:
        row = await request_refund(
            session,
            container.payments,
            order_id=order_id,
            amount_fen=body.amount_fen,
            reason=body.reason,
            refund_id=refund_id,
            by=f"staff:{staff.id}",
        )
        await session.commit()
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such payment order") from exc
    except RefundTooLarge as exc:
        raise _field_error(
            "amount_fen",
            f"amount_fen exceeds what can still be refunded ({exc.refundable_fen} fen)",
        ) from exc
    except (RefundNotAllowed, OrderConflict) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except RPCError as exc:
        raise _unavailable(exc) from exc
    return RefundOut.of(row)


class ReconciliationOut(ReconcileSummary):
    ran_at: datetime | None = None
    findings: list[dict[str, Any]] = Field(default_factory=list)


def _report(run: Reconciliation, found: list[Discrepancy] | None = None) -> ReconciliationOut:
    out = ReconciliationOut.model_validate(run, from_attributes=True)
    findings = [row.model_dump(exclude={"id", "bill_date"}) for row in found or []]
    return out.model_copy(update={"findings": findings})


@router.get("/attention")
async def needs_attention(
    session: SessionDep,
    staff: ReaderDep,
    stuck_minutes: Annotated[int, Query(ge=0, le=7 * 24 * 60)] = 30,
    hospital_code: Key | None = None,
) -> list[payment_attention.AttentionItem]:
    """Failed refunds, sagas retrying a step for longer than ``stuck_minutes``, and
    reconciliation days with open discrepancies: what a person has to resolve."""
    return await payment_attention.attention(
        session, staff, stuck_after=timedelta(minutes=stuck_minutes), hospital_code=hospital_code
    )


@router.get("/reconciliations")
async def reconciliations(
    session: SessionDep, _: AdminDep, limit: Annotated[int, Query(ge=1, le=366)] = 31
) -> list[ReconciliationOut]:
    return [_report(run) for run in await reconciliation.runs(session, limit)]


@router.get("/reconciliations/{bill_date}")
async def reconciliation_of(
    bill_date: SaneDate, session: SessionDep, _: AdminDep
) -> ReconciliationOut:
    run, found = await reconciliation.findings(session, bill_date)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{bill_date} has not been reconciled")
    return _report(run, found)


@router.post("/reconciliations/{bill_date}/run")
async def run_reconciliation(
    bill_date: SaneDate, container: ContainerDep, session: SessionDep, admin: AdminDep
) -> ReconciliationOut:
    summary: ReconcileSummary = await reconciliation.run_for_day(
        container.temporal, container.settings, bill_date
    )
    run, found = await reconciliation.findings(session, summary.bill_date)
    assert run is not None
    audit.record(
        session,
        actor_type="staff",
        actor_id=admin.id,
        action="reconciliation.run",
        target_type="reconciliation",
        target_id=summary.bill_date.isoformat(),
        discrepancies=len(found),
    )
    await session.commit()
    return _report(run, found)
