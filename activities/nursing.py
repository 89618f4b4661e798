"""Home-nursing orders' activities (NUR-1..3): the real-name check, the visit billed at the HIS
and its payment order (the payment saga then runs as a child), dispatch to a nurse, whether a
nurse is qualified, each step projected into the order and audited, and alarms raised for the
head nurses (whose numbers the workflow then texts)."""

from __future__ import annotations

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from contracts.nursing import (
    ACTIVITY_ALARM,
    ACTIVITY_CHARGE,
    ACTIVITY_DISPATCH,
    ACTIVITY_QUALIFIED,
    ACTIVITY_RECORD,
    ACTIVITY_VERIFY,
    PATIENT,
    SYSTEM,
    Alarmed,
    Dispatched,
    HeadNurse,
    NursingRef,
    Qualification,
    Qualified,
    RaiseAlarm,
    RecordNursing,
    Verified,
)
from contracts.payment import PaymentInput
from core.db import SessionFactory, transaction
from core.logs import get_logger
from core.models import (
    NursingItem,
    NursingNurse,
    NursingOrder,
    Patient,
    utcnow,
)
from core.settings import Settings
from integrations.his_charging import HisChargingClient
from integrations.identity import IdentityClient, IdentityRefused, VerifyRequest
from nursing.alarms import ALERT_LEVELS, texted
from nursing.dispatch import NurseLoad, choose_nurse
from services import audit
from services.alerts import raise_once
from services.payments import service_order

log = get_logger(__name__)

DEPARTMENT_NAME = "护理部"
# An order still in these has a nurse's hands full (dispatch counts them).
IN_HAND = ("accepted", "departed", "arrived", "in_service", "served", "signed")


class NursingActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        identity: IdentityClient,
        charging: HisChargingClient,
        settings: Settings,
    ) -> None:
        self._sessions = sessions
        self._identity = identity
        self._charging = charging
        self._settings = settings

    async def _order(self, session: AsyncSession, order_id: str) -> tuple[NursingOrder, Patient]:
        order = await session.get(NursingOrder, order_id)
        if order is None:
            # Written by the API in the transaction that started the workflow.
            raise LookupError(f"nursing order {order_id} not stored yet")
        patient = await session.get(Patient, order.patient_id)
        assert patient is not None
        return order, patient

    @activity.defn(name=ACTIVITY_VERIFY)
    async def verify_identity(self, ref: NursingRef) -> Verified:
        async with self._sessions() as session:
            _, patient = await self._order(session, ref.order_id)
        if not patient.id_number:
            return Verified(result="invalid")
        try:
            answer = await self._identity.verify(
                VerifyRequest(
                    request_id=ref.order_id, name=patient.name, id_number=patient.id_number
                )
            )
        except IdentityRefused:
            return Verified(result="invalid")
        # IdentityUnavailable propagates: retried by the workflow's policy.
        return Verified(result=answer.result)

    @activity.defn(name=ACTIVITY_CHARGE)
    async def charge(self, ref: NursingRef) -> PaymentInput:
        async with self._sessions() as session:
            order, patient = await self._order(session, ref.order_id)
            item = await session.get(NursingItem, order.item_code)
            assert item is not None
        charge = await self._charging.enter_charge(
            patient_id=patient.his_patient_id,
            title=f"上门护理：{item.name}"[:100],
            department_code="home_nursing",
            department_name=DEPARTMENT_NAME,
            amount_fen=order.price_fen,
            key=f"nursing:{order.id}",
        )
        async with transaction(self._sessions) as session:
            payment = await service_order(
                session,
                self._settings,
                hospital_code=self._settings.default_hospital_code,
                charge=charge,
                patient_id=patient.id,
                created_by=f"nursing:{order.id}",
            )
            row = await session.get(NursingOrder, order.id, with_for_update=True)
            assert row is not None
            row.payment_order_id = payment.order_id
        return payment

    @activity.defn(name=ACTIVITY_DISPATCH)
    async def dispatch(self, ref: NursingRef) -> Dispatched:
        async with self._sessions() as session:
            order, _ = await self._order(session, ref.order_id)
            item = await session.get(NursingItem, order.item_code)
            assert item is not None
            loads = await _loads(session)
        chosen = choose_nurse(loads, item.qualification)
        log.info("nursing order dispatched", order_id=ref.order_id, found=chosen is not None)
        return Dispatched(nurse_id=chosen)

    @activity.defn(name=ACTIVITY_QUALIFIED)
    async def qualified(self, asked: Qualification) -> Qualified:
        async with self._sessions() as session:
            nurse = await session.get(NursingNurse, asked.nurse_id)
        ok = (
            nurse is not None
            and nurse.on_duty
            and (asked.qualification is None or asked.qualification in nurse.qualifications)
        )
        return Qualified(qualified=ok)

    @activity.defn(name=ACTIVITY_RECORD)
    async def record(self, record: RecordNursing) -> None:
        state = record.state
        async with transaction(self._sessions) as session:
            row = await session.get(NursingOrder, record.input.order_id, with_for_update=True)
            assert row is not None, record.input.order_id
            # What the step brought (the record, the patient's words) is written once whatever
            # the order of the writes; the state only by a later step than the one written.
            if record.assessment is not None:
                row.assessment = record.assessment
            if record.rating_comment is not None:
                row.rating_comment = record.rating_comment
            if record.signature is not None:
                row.patient_signature = record.signature
            elif record.signed_name is not None:
                row.patient_signature = "typed"
            if record.seq <= row.version:
                return
            for step in state.steps[len(row.steps) :]:
                actor_type = {SYSTEM: "system", PATIENT: "patient"}.get(step.by, "staff")
                audit.record(
                    session,
                    actor_type=actor_type,
                    actor_id={SYSTEM: None, PATIENT: row.patient_id}.get(step.by, step.by),
                    action=f"nursing.{step.kind}",
                    target_type="nursing_order",
                    target_id=row.id,
                    patient_id=row.patient_id,
                    status=state.status,
                )
            row.version = record.seq
            row.status = state.status
            row.nurse_id = state.nurse_id
            row.escalated = state.escalated
            row.payment_order_id = state.payment_order_id or row.payment_order_id
            row.refund_id = state.refund_id
            row.refunded_fen = state.refunded_fen
            row.rating = state.rating
            row.steps = [s.model_dump(mode="json") for s in state.steps]
            if state.status in ("completed", "cancelled", "failed"):
                row.completed_at = row.completed_at or utcnow()
            row.updated_at = utcnow()

    @activity.defn(name=ACTIVITY_ALARM)
    async def alarm(self, alarm: RaiseAlarm) -> Alarmed:
        async with transaction(self._sessions) as session:
            order = await session.get(NursingOrder, alarm.order_id)
            assert order is not None
            await raise_once(
                session,
                workflow_id=order.workflow_id,
                kind=f"nursing_{alarm.key}",
                patient_id=order.patient_id,
                department_code=order.department_code,
                role="nurse",
                level=ALERT_LEVELS[alarm.level],
                summary=alarm.text,
            )
            heads = (
                await session.exec(
                    select(NursingNurse).where(col(NursingNurse.head_nurse).is_(True))
                )
            ).all()
        log.warning("nursing alarm", order_id=alarm.order_id, level=alarm.level)
        if not texted(alarm.level):
            return Alarmed(texted=[])
        return Alarmed(
            texted=[HeadNurse(staff_id=h.staff_id, phone=h.phone) for h in heads if h.phone]
        )


async def _loads(session: AsyncSession) -> list[NurseLoad]:
    nurses = (await session.exec(select(NursingNurse))).all()
    counts = dict(
        (
            await session.exec(
                select(NursingOrder.nurse_id, func.count())
                .where(col(NursingOrder.status).in_(IN_HAND))
                .group_by(col(NursingOrder.nurse_id))
            )
        ).all()
    )
    latest = dict(
        (
            await session.exec(
                select(NursingOrder.nurse_id, func.max(NursingOrder.created_at)).group_by(
                    col(NursingOrder.nurse_id)
                )
            )
        ).all()
    )
    return [
        NurseLoad(
            staff_id=n.staff_id,
            qualifications=frozenset(n.qualifications),
            on_duty=n.on_duty,
            open_orders=int(counts.get(n.staff_id, 0)),
            last_order_at=latest.get(n.staff_id),
        )
        for n in nurses
    ]
