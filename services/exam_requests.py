"""What a patient (on their phone) or staff (with them) ask of the exam process: binding the
exam account after the data-use authorisation (US-K1), and asking for an exam on a date, which
draws up the personalised list and starts the exam's workflow (its booking, US-K2, follows the
doctor's review). Shared by the staff API and the patient's page; callers commit nothing (these
commit what they write, so the vendor's account and ours never disagree)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from contracts.exam import EXAM_WORKFLOW, ExamInput, exam_workflow_id
from contracts.search import search_attributes
from core.models import ExamAccount, ExamBooking, Patient, utcnow
from core.settings import Settings
from exams.checks import booking_window, within_window
from exams.codes import Reply, reply
from exams.consent import CONSENT_VERSION
from integrations.exam import ExamClient, ExamRefused, ExamUnavailable
from integrations.exam_protocol import SEX_CODES, BindRequest, compact
from integrations.his import HisClient, HisUnavailable
from services import audit
from services.exams import drawn_list
from services.hospitals import hospital_profile
from services.patients import UnknownPatient, fetch_patient, upsert_patient

IDENTITY_FIELDS = ("sex", "birth_date", "id_number")


class MissingIdentity(Exception):
    """The patient record lacks a field the vendor needs to find the account."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


@dataclass(frozen=True)
class Bound:
    """The answer to a binding: the tender's code and message, the account, and what it means
    for the caller as an HTTP status (201 bound, 200 already bound, 409 / 502 / 503 for 104)."""

    reply: Reply
    account_no: str | None
    http_status: int


def _failed(reason: str, http_status: int) -> Bound:
    return Bound(reply("104", reason=reason), None, http_status)


async def bind_account(
    session: AsyncSession,
    vendor: ExamClient,
    his: HisClient,
    patient: Patient,
    *,
    consent_version: str,
    actor_type: str,
    actor_id: str,
) -> Bound:
    """Binds the patient's exam account (the version of the authorisation they accepted is
    recorded); the vendor creates one when it finds none (103). MissingIdentity when even the
    HIS's current record lacks a field the vendor needs."""
    assert consent_version == CONSENT_VERSION
    bound = await session.get(ExamAccount, patient.id)
    if bound is not None:
        return Bound(Reply("0", "成功", "已绑定体检账号"), bound.account_no, 200)
    if not all(getattr(patient, name) for name in IDENTITY_FIELDS):
        # An older copy of the record: the HIS's current one may hold them (HIS-2).
        with contextlib.suppress(UnknownPatient, HisUnavailable):
            patient = await upsert_patient(
                session, await fetch_patient(session, his, patient.his_patient_id)
            )
    for name in IDENTITY_FIELDS:
        if not getattr(patient, name):
            raise MissingIdentity(name)
    assert patient.birth_date is not None
    assert patient.id_number is not None
    try:
        answer = await vendor.bind(
            BindRequest(
                name=patient.name,
                sex=SEX_CODES[patient.sex or "M"],
                birth_date=compact(patient.birth_date),
                id_number=patient.id_number,
            )
        )
    except ExamUnavailable:
        return _failed("体检机构系统暂不可用，请稍后重试", 503)
    except ExamRefused as exc:
        return _failed(str(exc)[:200], 502)
    other = (
        await session.exec(select(ExamAccount).where(ExamAccount.account_no == answer.account_no))
    ).first()
    if other is not None:
        return _failed("该体检账号已绑定其他患者", 409)
    now = utcnow()
    try:
        session.add(
            ExamAccount(
                patient_id=patient.id,
                account_no=answer.account_no,
                consent_version=consent_version,
                consented_at=now,
                consented_by=actor_id,
                created_by_vendor=answer.code == "103",
                bound_at=now,
            )
        )
        audit.record(
            session,
            actor_type=actor_type,
            actor_id=actor_id,
            action="exam.account_bound",
            target_type="patient",
            target_id=patient.id,
            consent_version=consent_version,
            created_by_vendor=answer.code == "103",
        )
        await session.commit()
    except DBAPIError as exc:
        await session.rollback()
        return _failed(f"保存失败（{type(exc).__name__}）", 503)
    if answer.code == "103":
        found = reply("103", params="姓名、性别、出生日期、身份证号")
        created = Reply(found.code, found.level, f"{found.message}，体检机构已新建账号")
        return Bound(created, answer.account_no, 201)
    return Bound(Reply("0", "成功", "绑定成功"), answer.account_no, 201)


class NotBound(Exception):
    """The patient has no exam account yet."""


class ExamInProgress(Exception):
    """The patient already has an exam that is not over (a second tap, or a second request
    while the first is booked): one at a time."""

    def __init__(self, booking: ExamBooking) -> None:
        super().__init__(booking.id)
        self.booking = booking


# An exam still in these is not over: the patient cannot ask for another.
IN_PROGRESS = ("reviewing", "booking", "booked", "guided", "resulted")


async def request_exam(
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    patient: Patient,
    *,
    exam_date: date,
    department_code: str,
    actor_type: str,
    actor_id: str,
) -> ExamBooking | Reply:
    """The booking, its list drawn up and its workflow started (committed); or the 201 reply
    naming today and the last day that may be chosen. NotBound without an account."""
    profile = await hospital_profile(session, settings, settings.default_hospital_code)
    now = utcnow()
    today = now.astimezone(profile.tz).date()
    if not within_window(exam_date, today):
        start, end = booking_window(today)
        return reply("201", start=f"{start:%Y-%m-%d}", end=f"{end:%Y-%m-%d}")
    account = await session.get(ExamAccount, patient.id, with_for_update=True)
    if account is None:
        raise NotBound
    going = (
        await session.exec(
            select(ExamBooking).where(
                ExamBooking.patient_id == patient.id, col(ExamBooking.status).in_(IN_PROGRESS)
            )
        )
    ).first()
    if going is not None:
        raise ExamInProgress(going)
    listed = await drawn_list(session, patient, today)
    review_by = now + timedelta(hours=settings.exam_review_hours)
    booking = ExamBooking(
        workflow_id="",
        patient_id=patient.id,
        department_code=department_code,
        account_no=account.account_no,
        exam_date=exam_date,
        status="reviewing",
        listed=[i.model_dump() for i in listed],
        review_by=review_by,
        requested_by=actor_id,
    )
    booking.workflow_id = exam_workflow_id(booking.id)
    session.add(booking)
    audit.record(
        session,
        actor_type=actor_type,
        actor_id=actor_id,
        action="exam.requested",
        target_type="exam_booking",
        target_id=booking.id,
        patient_id=patient.id,
        exam_date=exam_date.isoformat(),
    )
    await session.flush()
    await temporal.start_workflow(
        EXAM_WORKFLOW,
        ExamInput(
            booking_id=booking.id,
            patient_id=patient.id,
            department_code=department_code,
            hospital_code=profile.code,
            timezone=profile.tz.key,
            exam_date=exam_date,
            stage="reviewing",
            listed=listed,
            review_by=review_by,
        ),
        id=booking.workflow_id,
        task_queue=settings.temporal_task_queue,
        search_attributes=search_attributes(
            patient=patient.his_patient_id, department=department_code, hospital=profile.code
        ),
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    await session.commit()
    return booking
