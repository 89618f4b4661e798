"""The physical-exam process's activities (PX-8): booking with the vendor (US-K2), the booking
row and alerts projected from the workflow, the results assessed after the report (and the
follow-up run for abnormal ones), and a kept dictionary change applied (US-H5)."""

from __future__ import annotations

from sqlmodel import col, select
from temporalio import activity

from contracts.exam import (
    ACTIVITY_APPLY_DICTIONARY,
    ACTIVITY_ASSESS,
    ACTIVITY_BOOK,
    ACTIVITY_RECORD,
    STATUS_RANK,
    Assessment,
    Booked,
    BookExam,
    DictionaryChange,
    ExamRecord,
    ExamRef,
)
from contracts.pathway import RunInput, pathway_workflow_id
from core.db import SessionFactory, transaction
from core.logs import get_logger
from core.models import (
    ExamAccount,
    ExamBooking,
    ExamDictionaryChange,
    Pathway,
    PathwayVersion,
    Patient,
    utcnow,
)
from core.settings import Settings
from integrations.exam import ExamClient, ExamRefused
from integrations.exam_protocol import BookRequest, DictionaryItem, ExamItem, compact
from pathways.definition import PathwaySnapshot
from services.alerts import raise_once
from services.exams import apply_dictionary, customer_of, results_of, vendor_codes
from services.hospitals import hospital_profile

log = get_logger(__name__)

FOLLOWUP_PATHWAY = "exam-followup"


class ExamActivities:
    def __init__(self, sessions: SessionFactory, client: ExamClient, settings: Settings) -> None:
        self._sessions = sessions
        self._client = client
        self._settings = settings

    @activity.defn(name=ACTIVITY_BOOK)
    async def book(self, request: BookExam) -> Booked:
        async with self._sessions() as session:
            booking = await session.get(ExamBooking, request.booking_id)
            assert booking is not None, request.booking_id
            patient = await session.get(Patient, booking.patient_id)
            account = await session.get(ExamAccount, booking.patient_id)
            assert patient is not None
            assert account is not None
            theirs = await vendor_codes(session)
            body = BookRequest(
                booking_id=booking.id,
                account_no=account.account_no,
                customer=customer_of(patient),
                exam_date=compact(booking.exam_date),
                items=[
                    ExamItem(code=theirs.get(i.code, i.code), name=i.name) for i in request.items
                ],
            )
        try:
            answer = await self._client.book(body)
        except ExamRefused as exc:
            return Booked(code="202", message=str(exc)[:300])
        # ExamUnavailable propagates: retried by the workflow's policy.
        return Booked(
            code=answer.code,
            message=answer.message or ("" if answer.code == "0" else "体检机构未说明原因"),
            exam_no=answer.exam_no,
            vendor_booking_no=answer.vendor_booking_no,
        )

    @activity.defn(name=ACTIVITY_RECORD)
    async def record(self, record: ExamRecord) -> None:
        async with transaction(self._sessions) as session:
            booking = await session.get(ExamBooking, record.booking_id, with_for_update=True)
            assert booking is not None, record.booking_id
            if STATUS_RANK[record.status] > STATUS_RANK.get(booking.status, -1):
                booking.status = record.status
            for name in (
                "ticked",
                "reviewed_by",
                "last_code",
                "last_message",
                "vendor_booking_no",
                "abnormal_items",
                "followup_workflow_id",
            ):
                value = getattr(record, name)
                if value is not None:
                    setattr(booking, name, value)
            if record.booked_items is not None:
                booking.booked_items = [i.model_dump() for i in record.booked_items]
            if record.exam_no is not None and booking.exam_no is None:
                booking.exam_no = record.exam_no
            booking.updated_at = utcnow()
            if record.alert and record.alert_kind:
                raised = await raise_once(
                    session,
                    workflow_id=booking.workflow_id,
                    kind=record.alert_kind,
                    patient_id=booking.patient_id,
                    department_code=booking.department_code,
                    role=record.alert_role,
                    level=record.alert_level,
                    summary=record.alert,
                )
                if raised:
                    log.warning("alert raised", kind=record.alert_kind, booking_id=booking.id)

    @activity.defn(name=ACTIVITY_ASSESS)
    async def assess(self, ref: ExamRef) -> Assessment:
        """The abnormal results, and the follow-up run for them on the live version of the exam
        follow-up plan (none if it is not published)."""
        async with self._sessions() as session:
            booking = await session.get(ExamBooking, ref.booking_id)
            assert booking is not None, ref.booking_id
            results = await results_of(session, booking.exam_no or "")
            abnormal = [r.name for r in results if r.abnormal]
            if not abnormal:
                return Assessment(abnormal_items=[])
            patient = await session.get(Patient, booking.patient_id)
            assert patient is not None
            row = (
                await session.exec(
                    select(PathwayVersion)
                    .join(Pathway, col(Pathway.id) == PathwayVersion.pathway_id)
                    .where(
                        Pathway.id == FOLLOWUP_PATHWAY,
                        col(Pathway.live_version) == PathwayVersion.version,
                        col(Pathway.availability) == "active",
                    )
                )
            ).first()
            if row is None or row.snapshot is None:
                log.warning("exam follow-up plan not published", booking_id=booking.id)
                return Assessment(abnormal_items=abnormal)
            profile = await hospital_profile(
                session, self._settings, self._settings.default_hospital_code
            )
        at = booking.report_received_at or utcnow()
        return Assessment(
            abnormal_items=abnormal,
            followup=RunInput(
                patient_id=patient.id,
                department_code=booking.department_code,
                hospital_code=profile.code,
                anchor_at=at,
                anchor_event="exam",
                snapshot=PathwaySnapshot.model_validate(row.snapshot),
                timezone=profile.tz.key,
            ),
            followup_workflow_id=pathway_workflow_id(
                FOLLOWUP_PATHWAY, patient.his_patient_id, f"exam-{booking.exam_no}"
            ),
        )

    @activity.defn(name=ACTIVITY_APPLY_DICTIONARY)
    async def apply_dictionary(self, change: DictionaryChange) -> None:
        async with transaction(self._sessions) as session:
            kept = await session.get(ExamDictionaryChange, change.message_id, with_for_update=True)
            if kept is None or kept.applied_at is not None:
                return
            items = [DictionaryItem.model_validate(i) for i in kept.items]
            await apply_dictionary(session, kept.change_type, items)
            kept.applied_at = utcnow()
        log.info("exam dictionary change applied", message_id=change.message_id)
