"""Prescription activities: the base rules, the database projection, HIS callbacks and the
service enterprise's order API. Each is idempotent under its key or its event sequence."""

from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.prescription import (
    ACTIVITY_CANCEL_ORDER,
    ACTIVITY_CHECK,
    ACTIVITY_DISPATCH,
    ACTIVITY_HIS_CALLBACK,
    ACTIVITY_RECORD,
    CancelOrder,
    CheckRequest,
    CheckResult,
    DispatchOrder,
    DispatchResult,
    Finding,
    HisCallback,
    RecordRequest,
)
from core.db import SessionFactory, transaction
from core.logs import get_logger
from core.models import Prescription, PrescriptionEvent
from integrations.enterprise import EnterpriseClient, EnterpriseRefused, EnterpriseUnavailable
from integrations.his import HisClient, HisRefused
from prescriptions.rules import RuleItem, check
from services import audit

log = get_logger(__name__)


class PrescriptionActivities:
    def __init__(
        self, sessions: SessionFactory, his: HisClient, enterprises: EnterpriseClient
    ) -> None:
        self._sessions = sessions
        self._his = his
        self._enterprises = enterprises

    @activity.defn(name=ACTIVITY_CHECK)
    async def check(self, request: CheckRequest) -> CheckResult:
        findings = check([RuleItem(i.herb, i.dose_g) for i in request.items])
        return CheckResult(
            findings=[
                Finding(code=f.code, rule=f.rule, herbs=list(f.herbs), message=f.message)
                for f in findings
            ]
        )

    @activity.defn(name=ACTIVITY_RECORD)
    async def record(self, record: RecordRequest) -> None:
        state, current = record.state, record.state.rounds[-1] if record.state.rounds else None
        async with transaction(self._sessions) as session:
            row = await session.get(
                Prescription, record.input.prescription_id, with_for_update=True
            )
            if row is None:
                # Written by the API in the transaction that started the workflow.
                raise LookupError(f"prescription {record.input.prescription_id} not stored yet")
            before = (row.status, row.review_outcome)
            if record.seq > row.version:
                row.version = record.seq
                row.status = state.status
                row.round = state.round
                row.updated_at = record.at
                if current is not None:
                    row.items = [i.model_dump() for i in current.content.items]
                    row.doses = current.content.doses
                    row.decoction = current.content.decoction
                    row.diagnosis = [d.model_dump() for d in current.content.diagnosis]
                    row.round_started_at = current.started_at
                    row.review_deadline_at = current.deadline_at
                    row.findings = [f.model_dump() for f in current.findings]
                    conclusion = current.conclusion
                    row.review_outcome = conclusion.outcome if conclusion else None
                    row.reviewed_by = conclusion.reviewer if conclusion else None
                    row.reviewed_at = conclusion.at if conclusion else None
                    row.review_reason = conclusion.reason[:500] if conclusion else None
                    row.review_timed_out = conclusion.timed_out if conclusion else False
                row.enterprise_code = state.enterprise
                row.tracking_no = state.tracking_no
                if state.payment is not None:
                    row.payment_id = state.payment.payment_id
                    row.amount_fen = state.payment.amount_fen
                    row.paid_at = state.payment.paid_at
                if state.refund is not None and state.status == "refunded":
                    row.refund_reason = state.refund.reason
                    row.refunded_at = record.at
            found = await session.exec(
                select(PrescriptionEvent.id).where(
                    PrescriptionEvent.prescription_id == row.id,
                    PrescriptionEvent.seq == record.seq,
                )
            )
            if found.first() is None:
                session.add(
                    PrescriptionEvent(
                        prescription_id=row.id,
                        seq=record.seq,
                        kind=record.kind,
                        status=state.status,
                        round=state.round,
                        actor=record.actor[:80],
                        note=(record.note or "")[:500] or None,
                        at=record.at,
                    )
                )
            _audit_prescription(session, row, before, record.kind)
        log.info(
            "prescription projected",
            prescription_id=record.input.prescription_id,
            kind=record.kind,
            status=state.status,
        )

    @activity.defn(name=ACTIVITY_HIS_CALLBACK)
    async def his_callback(self, callback: HisCallback) -> None:
        body = callback.model_dump(mode="json", exclude={"idempotency_key"})
        try:
            await self._his.post_prescription_status(
                callback.prescription_no, body, callback.idempotency_key
            )
        except HisRefused as exc:
            raise ApplicationError(str(exc), type="HisRefused", non_retryable=True) from exc
        # HisUnavailable propagates: Temporal retries it with backoff.
        log.info("HIS called back", prescription_no=callback.prescription_no, seq=callback.seq)

    @activity.defn(name=ACTIVITY_DISPATCH)
    async def dispatch(self, order: DispatchOrder) -> DispatchResult:
        body = order.model_dump(mode="json", exclude={"idempotency_key", "enterprise"})
        try:
            order_id = await self._enterprises.create_order(
                order.enterprise, body, order.idempotency_key
            )
        except EnterpriseRefused as exc:
            raise ApplicationError(str(exc), type="EnterpriseRefused", non_retryable=True) from exc
        except EnterpriseUnavailable as exc:
            raise ApplicationError(str(exc), type="EnterpriseUnavailable") from exc
        return DispatchResult(enterprise_order_id=order_id)

    @activity.defn(name=ACTIVITY_CANCEL_ORDER)
    async def cancel_order(self, cancel: CancelOrder) -> None:
        try:
            await self._enterprises.cancel_order(
                cancel.enterprise, cancel.prescription_id, cancel.reason, cancel.idempotency_key
            )
        except EnterpriseRefused as exc:
            raise ApplicationError(str(exc), type="EnterpriseRefused", non_retryable=True) from exc
        except EnterpriseUnavailable as exc:
            raise ApplicationError(str(exc), type="EnterpriseUnavailable") from exc


def _audit_prescription(
    session: AsyncSession, row: Prescription, before: tuple[str, str | None], kind: str
) -> None:
    """System entries (last in the transaction) for a status change and for a review's
    conclusion, by a pharmacist or by the deadline."""
    status, outcome = before
    if row.review_outcome is not None and row.review_outcome != outcome:
        audit.record(
            session,
            actor_type="system",
            actor_id=None,
            action="prescription.concluded",
            target_type="prescription",
            target_id=row.id,
            patient_id=row.patient_id,
            outcome=row.review_outcome,
            reviewer=row.reviewed_by,
            timed_out=row.review_timed_out,
            round=row.round,
        )
    if row.status != status:
        audit.record(
            session,
            actor_type="system",
            actor_id=None,
            action="prescription.status_changed",
            target_type="prescription",
            target_id=row.id,
            patient_id=row.patient_id,
            before=status,
            after=row.status,
            kind=kind,
        )
