"""Payment activities: the HIS charging interface, the insurance centre, the payment provider,
and the projection of the sagas into the database.

Each external call is idempotent under the key the saga derives from its workflow id and step
(or under the provider's own out_trade_no / out_refund_no). A refusal (the other party said no)
becomes a non-retryable ``Refused`` error; being unreachable propagates and Temporal retries it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.payment import (
    ACTIVITY_HIS_REFUND,
    ACTIVITY_HIS_REFUND_CHECK,
    ACTIVITY_HIS_SETTLE,
    ACTIVITY_INSURANCE_CANCEL,
    ACTIVITY_INSURANCE_SETTLE,
    ACTIVITY_OPEN_REFUND,
    ACTIVITY_PRESETTLE,
    ACTIVITY_PROVIDER_CLOSE,
    ACTIVITY_PROVIDER_CREATE,
    ACTIVITY_PROVIDER_QUERY,
    ACTIVITY_PROVIDER_REFUND,
    ACTIVITY_PROVIDER_REFUND_QUERY,
    ACTIVITY_RECORD_CONSULTATION,
    ACTIVITY_RECORD_PAYMENT,
    ACTIVITY_RECORD_REFUND,
    ACTIVITY_RELEASE,
    REFUSED,
    Change,
    HisRefunded,
    HisRefundRequest,
    HisSettled,
    HisSettleRequest,
    InsuranceCancelled,
    InsuranceCancelRequest,
    InsuranceSettled,
    InsuranceSettleRequest,
    LedgerEntry,
    OpenedRefund,
    OpenRefund,
    PresettleRequest,
    ProviderCreated,
    ProviderCreateRequest,
    ProviderQueryRequest,
    ProviderRefunded,
    ProviderRefundQuery,
    ProviderRefundRequest,
    ProviderTrade,
    RecordConsultation,
    RecordPayment,
    RecordRefund,
    RefundCheckRequest,
    RefundCheckResult,
    Released,
    ReleaseRequest,
    Split,
)
from core.db import SessionFactory, insert_if_absent, transaction
from core.logs import get_logger
from core.models import (
    Consultation,
    LedgerEntryRow,
    PaymentEvent,
    PaymentOrder,
    PaymentRefund,
    new_id,
    utcnow,
)
from integrations.his_charging import HisChargeRefused, HisChargingClient
from integrations.insurance import InsuranceClient, InsuranceRefused
from integrations.refusals import Refused
from integrations.wechatpay import ProviderRefused, RefundResult, Trade, WeChatPayClient
from services import audit
from services.payment_refunds import NothingToRefund, reserve_refund

log = get_logger(__name__)

# Saga status -> order status; the order stays "paying" while the saga runs.
ORDER_STATUS = {"settled": "settled", "failed": "failed"}
REFUND_FINAL = frozenset({"succeeded", "rejected", "failed"})


def refused(exc: Exception) -> ApplicationError:
    return ApplicationError(str(exc), type=REFUSED, non_retryable=True)


@contextmanager
def refusals_are_final() -> Iterator[None]:
    """A party's refusal ends the step (the saga decides what follows); anything else, such
    as the party being unreachable, propagates and is retried."""
    try:
        yield
    except Refused as exc:
        raise refused(exc) from exc


def _trade(trade: Trade | None, out_trade_no: str) -> ProviderTrade:
    if trade is None:
        return ProviderTrade(out_trade_no=out_trade_no, trade_state="NOT_FOUND")
    return ProviderTrade(
        out_trade_no=trade.out_trade_no,
        trade_state=trade.trade_state,
        transaction_id=trade.transaction_id,
        amount_fen=trade.amount_fen,
        success_time=trade.success_time,
    )


def _refunded(result: RefundResult) -> ProviderRefunded:
    return ProviderRefunded(
        refund_id=result.refund_id,
        out_refund_no=result.out_refund_no,
        status=result.status,
        amount_fen=result.amount_fen,
        success_time=result.success_time,
    )


class PaymentActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        his: HisChargingClient,
        insurance: InsuranceClient,
        provider: WeChatPayClient,
    ) -> None:
        self._sessions = sessions
        self._his = his
        self._insurance = insurance
        self._provider = provider

    # --- HIS ---------------------------------------------------------------------------------

    @activity.defn(name=ACTIVITY_PRESETTLE)
    async def presettle(self, request: PresettleRequest) -> Split:
        with refusals_are_final():
            pre = await self._his.presettle(
                request.his_order_no, request.patient_id, request.use_insurance, request.key
            )
        return Split(
            presettle_id=pre.presettle_id,
            total_fen=pre.total_fen,
            insurance_fen=pre.insurance_fen,
            self_pay_fen=pre.self_pay_fen,
        )

    @activity.defn(name=ACTIVITY_RELEASE)
    async def release(self, request: ReleaseRequest) -> Released:
        try:
            await self._his.release(request.his_order_no, request.presettle_id, request.reason)
        except HisChargeRefused as exc:
            if exc.code in ("PRESETTLE_NOT_FOUND", "ORDER_NOT_FOUND"):
                return Released(released=False)
            raise refused(exc) from exc
        return Released(released=True)

    @activity.defn(name=ACTIVITY_HIS_SETTLE)
    async def his_settle(self, request: HisSettleRequest) -> HisSettled:
        body = request.model_dump(exclude={"his_order_no", "key"})
        with refusals_are_final():
            receipt = await self._his.settle(request.his_order_no, body, request.key)
        return HisSettled(receipt_no=receipt)

    @activity.defn(name=ACTIVITY_HIS_REFUND_CHECK)
    async def his_refund_check(self, request: RefundCheckRequest) -> RefundCheckResult:
        with refusals_are_final():
            check = await self._his.refund_check(request.his_order_no, request.amount_fen)
        return RefundCheckResult.model_validate(check.model_dump())

    @activity.defn(name=ACTIVITY_HIS_REFUND)
    async def his_refund(self, request: HisRefundRequest) -> HisRefunded:
        body = {
            "refund_no": request.refund_id,
            "amount_fen": request.amount_fen,
            "insurance_fen": request.insurance_fen,
            "self_pay_fen": request.self_pay_fen,
            "provider_refund_id": request.provider_refund_id,
        }
        with refusals_are_final():
            number = await self._his.refund(request.his_order_no, body, request.key)
        return HisRefunded(his_refund_no=number)

    # --- insurance centre --------------------------------------------------------------------

    @activity.defn(name=ACTIVITY_INSURANCE_SETTLE)
    async def insurance_settle(self, request: InsuranceSettleRequest) -> InsuranceSettled:
        with refusals_are_final():
            settled = await self._insurance.settle(
                order_no=request.his_order_no,
                patient_id=request.patient_id,
                presettle_id=request.presettle_id,
                amount_fen=request.amount_fen,
                key=request.key,
            )
        return InsuranceSettled(settlement_id=settled.settlement_id, amount_fen=settled.amount_fen)

    @activity.defn(name=ACTIVITY_INSURANCE_CANCEL)
    async def insurance_cancel(self, request: InsuranceCancelRequest) -> InsuranceCancelled:
        """Cancels our settlement; without its id (the settle answer was lost), whatever the
        centre holds for this order and pre-settlement."""
        with refusals_are_final():
            if request.settlement_id is not None:
                targets = [request.settlement_id]
            else:
                found = await self._insurance.settlements_for(request.his_order_no)
                targets = [
                    s.settlement_id
                    for s in found
                    if s.presettle_id == request.presettle_id and s.status == "settled"
                ]
            cancelled = []
            for settlement_id in targets:
                try:
                    done = await self._insurance.cancel(settlement_id, request.reason[:100])
                except InsuranceRefused as exc:
                    if exc.code == "SETTLEMENT_NOT_FOUND":
                        continue
                    raise
                cancelled.append(
                    InsuranceSettled(settlement_id=done.settlement_id, amount_fen=done.amount_fen)
                )
        return InsuranceCancelled(cancelled=cancelled)

    # --- payment provider --------------------------------------------------------------------

    @activity.defn(name=ACTIVITY_PROVIDER_CREATE)
    async def provider_create(self, request: ProviderCreateRequest) -> ProviderCreated:
        with refusals_are_final():
            url = await self._provider.create_h5_order(
                out_trade_no=request.out_trade_no,
                description=request.description,
                amount_fen=request.amount_fen,
                time_expire=request.expires_at,
                notify_url=request.notify_url,
                attach=request.attach,
            )
        return ProviderCreated(pay_url=url)

    @activity.defn(name=ACTIVITY_PROVIDER_QUERY)
    async def provider_query(self, request: ProviderQueryRequest) -> ProviderTrade:
        with refusals_are_final():
            trade = await self._provider.query_order(request.out_trade_no)
        return _trade(trade, request.out_trade_no)

    @activity.defn(name=ACTIVITY_PROVIDER_CLOSE)
    async def provider_close(self, request: ProviderQueryRequest) -> ProviderTrade:
        """Closes the order unless it was paid; the trade as it stands afterwards either way."""
        with refusals_are_final():
            trade = await self._provider.query_order(request.out_trade_no)
            if trade is None or trade.transaction_id or trade.trade_state == "CLOSED":
                return _trade(trade, request.out_trade_no)
            try:
                await self._provider.close_order(request.out_trade_no)
            except ProviderRefused as exc:
                if exc.code != "ORDERPAID":
                    raise
                # Paid between our look and the close: report the payment.
            return _trade(
                await self._provider.query_order(request.out_trade_no), request.out_trade_no
            )

    @activity.defn(name=ACTIVITY_PROVIDER_REFUND)
    async def provider_refund(self, request: ProviderRefundRequest) -> ProviderRefunded:
        with refusals_are_final():
            result = await self._provider.refund(
                out_trade_no=request.out_trade_no,
                out_refund_no=request.out_refund_no,
                refund_fen=request.refund_fen,
                total_fen=request.total_fen,
                reason=request.reason,
            )
        log.info("provider refund", out_refund_no=request.out_refund_no, status=result.status)
        return _refunded(result)

    @activity.defn(name=ACTIVITY_PROVIDER_REFUND_QUERY)
    async def provider_refund_query(self, request: ProviderRefundQuery) -> ProviderRefunded:
        with refusals_are_final():
            result = await self._provider.query_refund(request.out_refund_no)
        if result is None:
            raise refused(ProviderRefused("RESOURCE_NOT_EXISTS", request.out_refund_no))
        return _refunded(result)

    # --- projection --------------------------------------------------------------------------

    async def _ledger(
        self, session: AsyncSession, order_id: str, entries: list[LedgerEntry]
    ) -> None:
        for entry in entries:
            await insert_if_absent(
                session,
                LedgerEntryRow.__table__,  # type: ignore[attr-defined]
                {
                    "id": new_id(),
                    "order_id": order_id,
                    "refund_id": entry.refund_id,
                    "party": entry.party,
                    "kind": entry.kind,
                    "reference": entry.reference,
                    "amount_fen": entry.amount_fen,
                    "at": entry.at,
                    "recorded_at": utcnow(),
                },
                unique_on=["party", "kind", "reference"],
            )

    async def _events(
        self,
        session: AsyncSession,
        order_id: str,
        source: str,
        history: list[Change],
        prefix: str = "",
    ) -> None:
        """The saga's status changes as the order's trail, one row per change (a projection
        refreshed without a change, e.g. when a payment is seen, adds none)."""
        for seq, change in enumerate(history, start=1):
            await insert_if_absent(
                session,
                PaymentEvent.__table__,  # type: ignore[attr-defined]
                {
                    "id": new_id(),
                    "order_id": order_id,
                    "source": source,
                    "seq": seq,
                    "status": f"{prefix}{change.status}"[:20],
                    "note": change.note[:300] or None,
                    "at": change.at,
                },
                unique_on=["source", "seq"],
            )

    @activity.defn(name=ACTIVITY_RECORD_PAYMENT)
    async def record_payment(self, record: RecordPayment) -> None:
        state = record.state
        source = activity.info().workflow_id or ""
        async with transaction(self._sessions) as session:
            row = await session.get(PaymentOrder, state.order_id, with_for_update=True)
            if row is None:
                # Written by the API in the transaction that started the saga.
                raise LookupError(f"payment order {state.order_id} not stored yet")
            before = (row.saga_status, row.status)
            if record.seq > row.version:
                row.version = record.seq
                row.saga_status = state.status
                if row.status in ("created", "paying") or state.status in ORDER_STATUS:
                    row.status = ORDER_STATUS.get(state.status, "paying")
                row.workflow_id = source
                split = state.split
                if split is not None:
                    row.scenario = split.scenario
                    row.insurance_fen = split.insurance_fen
                    row.self_pay_fen = split.self_pay_fen
                    row.presettle_id = split.presettle_id
                row.insurance_settlement_id = state.insurance_settlement_id
                row.out_trade_no = state.out_trade_no
                row.pay_url = state.pay_url
                row.pay_deadline_at = state.deadline_at
                row.transaction_id = state.transaction_id
                row.paid_at = state.paid_at
                row.receipt_no = state.receipt_no
                row.failure_reason = (state.failure_reason or "")[:300] or None
                row.compensations = [c.model_dump(mode="json") for c in state.compensations]
                if state.status == "settled":
                    row.settled_at = record.at
                if state.status == "failed":
                    row.live_his_order_no = None
                row.updated_at = record.at
            await self._events(session, row.id, source, state.history)
            await self._ledger(session, row.id, state.ledger)
            if (row.saga_status, row.status) != before:
                # Last in the transaction: the audit chain's lock is held only until commit.
                audit.record(
                    session,
                    actor_type="system",
                    actor_id=None,
                    action="payment.settled" if state.status == "settled" else "payment.changed",
                    target_type="payment_order",
                    target_id=row.id,
                    patient_id=row.patient_id,
                    saga_before=before[0],
                    saga_after=row.saga_status,
                    status_before=before[1],
                    status_after=row.status,
                )
        log.info("payment projected", order_id=state.order_id, status=state.status)

    @activity.defn(name=ACTIVITY_RECORD_REFUND)
    async def record_refund(self, record: RecordRefund) -> None:
        state = record.state
        source = activity.info().workflow_id or ""
        async with transaction(self._sessions) as session:
            order = await session.get(PaymentOrder, state.order_id, with_for_update=True)
            refund = await session.get(PaymentRefund, state.refund_id, with_for_update=True)
            if order is None or refund is None:
                raise LookupError(f"refund {state.refund_id} not stored yet")
            refund_before, order_before = refund.status, order.status
            if record.seq > refund.version:
                refund.version = record.seq
                was_final = refund.status in REFUND_FINAL
                refund.status = state.status
                refund.insurance_fen = state.insurance_fen
                refund.self_pay_fen = state.self_pay_fen
                refund.provider_refund_id = state.provider_refund_id
                refund.his_refund_no = state.his_refund_no
                refund.failure_reason = (state.reason or "")[:300] or None
                if state.status in REFUND_FINAL and not was_final:
                    refund.finished_at = record.at
                    _settle_reservation(order, refund, state.status)
                    order.updated_at = record.at
            await self._events(session, order.id, source, state.history, prefix="refund_")
            await self._ledger(session, order.id, state.ledger)
            if refund.status != refund_before:
                audit.record(
                    session,
                    actor_type="system",
                    actor_id=None,
                    action=f"refund.{refund.status}"[:64],
                    target_type="payment_refund",
                    target_id=refund.id,
                    patient_id=order.patient_id,
                    order_id=order.id,
                    amount_fen=refund.amount_fen,
                    before=refund_before,
                    order_status_before=order_before,
                    order_status_after=order.status,
                )
        log.info("refund projected", refund_id=state.refund_id, status=state.status)

    @activity.defn(name=ACTIVITY_OPEN_REFUND)
    async def open_refund(self, request: OpenRefund) -> OpenedRefund:
        async with transaction(self._sessions) as session:
            try:
                opened = await reserve_refund(
                    session,
                    order_id=request.order_id,
                    refund_id=request.refund_id,
                    amount_fen=request.amount_fen,
                    reason=request.reason,
                    requested_by=request.requested_by,
                )
            except NothingToRefund:
                return OpenedRefund(input=None)
        return OpenedRefund(input=opened)

    @activity.defn(name=ACTIVITY_RECORD_CONSULTATION)
    async def record_consultation(self, record: RecordConsultation) -> None:
        state = record.state
        async with transaction(self._sessions) as session:
            found = await session.exec(
                select(Consultation)
                .where(Consultation.id == state.consultation_id)
                .with_for_update()
            )
            row = found.first()
            if row is None:
                raise LookupError(f"consultation {state.consultation_id} not stored yet")
            before = row.status
            if record.seq > row.version:
                row.version = record.seq
                row.status = state.status
                row.accept_deadline_at = state.accept_deadline_at
                row.accepted_by = state.accepted_by
                row.accepted_at = state.accepted_at
                row.refund_id = state.refund_id
                row.note = (state.note or "")[:300] or None
                row.updated_at = record.at
            if row.status != before:
                audit.record(
                    session,
                    actor_type="system",
                    actor_id=None,
                    action="consultation.status_changed",
                    target_type="consultation",
                    target_id=row.id,
                    patient_id=row.patient_id,
                    before=before,
                    after=row.status,
                )


def _settle_reservation(order: PaymentOrder, refund: PaymentRefund, status: str) -> None:
    """A finished refund leaves the reservation; what actually went back counts as refunded."""
    order.refund_reserved_fen -= refund.amount_fen
    if status == "succeeded":
        order.refunded_fen += refund.amount_fen
    elif status == "failed" and refund.provider_refund_id:
        # The provider part went back although the rest did not; people finish it by hand.
        order.refunded_fen += refund.self_pay_fen or 0
    if order.refunded_fen >= order.amount_fen:
        order.status = "refunded"
    elif order.refunded_fen > 0:
        order.status = "partially_refunded"
