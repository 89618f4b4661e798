"""Physical exams for staff (PX-1..8): the data-use authorisation and binding a patient's exam
account (US-K1), asking for an exam (the personalised list, the doctor's review, the booking
with the vendor: US-K2), the bookings with their results and report, and mapping the vendor's
items that matched nothing (501) so their held results are saved."""

from __future__ import annotations

import contextlib
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, func, select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_patient_visible, ensure_visible, require
from api.schemas import Page, field_error
from contracts.exam import (
    EXAM_WORKFLOW,
    UPDATE_REVIEW,
    ExamInput,
    ExamState,
    Review,
    exam_workflow_id,
)
from core.models import ExamAccount, ExamBooking, ExamResultHold, Patient, utcnow
from core.validation import Count, Key, Line
from exams.catalogue import catalogue
from exams.checks import booking_window, within_window
from exams.codes import INTERFACE_CODES, MESSAGES, reply
from exams.consent import CONSENT_TEXT, CONSENT_VERSION
from integrations.exam import ExamRefused, ExamUnavailable
from integrations.exam_protocol import SEX_CODES, BindRequest, compact
from integrations.his import HisUnavailable
from services import audit
from services.exams import UnknownItem, drawn_list, held_results, map_item, results_of
from services.hospitals import hospital_profile
from services.patients import UnknownPatient, fetch_patient, known_or_fetched, upsert_patient
from services.scope import patient_filter, record_filter
from services.staff import StaffPrincipal

router = APIRouter(prefix="/api/exams", tags=["physical exams"])
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.EXAMS_READ))]
BookerDep = Annotated[StaffPrincipal, Depends(require(Permission.EXAMS_BOOK))]
ReviewerDep = Annotated[StaffPrincipal, Depends(require(Permission.EXAMS_REVIEW))]
MapperDep = Annotated[StaffPrincipal, Depends(require(Permission.EXAMS_MAP))]


def _codes(interface: str) -> str:
    return "; ".join(f"{c} {MESSAGES[c][1]}" for c in INTERFACE_CODES[interface])


class Consent(BaseModel):
    version: str
    text: str


class PatientRef(BaseModel):
    """The patient by our id, or by the HIS's (fetched from the HIS the first time)."""

    patient_id: Key | None = None
    his_patient_id: Line | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.patient_id is None) == (self.his_patient_id is None):
            raise ValueError("give patient_id or his_patient_id")
        return self


class BindIn(PatientRef):
    consent_version: Line = Field(min_length=1, max_length=32)
    accepted: bool = Field(description="the patient accepted the data-use authorisation")


class BindOut(BaseModel):
    code: str
    level: str
    message: str
    account_no: str | None = None


class BookingIn(PatientRef):
    exam_date: date
    department_code: Line | None = Field(default=None, min_length=1, max_length=32)


class ReviewIn(BaseModel):
    ticked: list[Line] = Field(default_factory=list, max_length=100)


class MappingIn(BaseModel):
    vendor_code: Line = Field(min_length=1, max_length=64)
    standard_code: Line = Field(min_length=1, max_length=32)


class ResultOut(BaseModel):
    standard_code: str
    name: str
    value: str
    unit: str | None
    reference_range: str | None
    abnormal: bool


class BookingOut(BaseModel):
    id: str
    workflow_id: str
    patient_id: str
    department_code: str
    account_no: str
    exam_no: str | None
    exam_date: date
    status: str
    listed: list[dict[str, Any]]
    ticked: list[str]
    booked_items: list[dict[str, Any]]
    review_by: datetime | None
    reviewed_by: str | None
    last_code: str | None
    last_message: str | None
    guide: str | None
    report: str | None
    conclusions: list[str]
    abnormal_items: list[str]
    followup_workflow_id: str | None
    created_at: datetime


class BookingDetail(BookingOut):
    results: list[ResultOut]


class HeldOut(BaseModel):
    id: str
    exam_no: str
    patient_id: str
    vendor_code: str
    vendor_name: str
    change_type: int
    received_at: datetime


async def _patient(
    session: SessionDep, container: ContainerDep, staff: StaffPrincipal, ref: PatientRef
) -> Patient:
    if ref.patient_id is not None:
        patient = await session.get(Patient, ref.patient_id)
        if patient is None:
            raise field_error(("body", "patient_id"), "no such patient")
    else:
        try:
            patient = await known_or_fetched(session, container.his, ref.his_patient_id or "")
        except UnknownPatient as exc:
            raise field_error(("body", "his_patient_id"), "the HIS knows no such patient") from exc
        except HisUnavailable as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "HIS unreachable: retry later"
            ) from exc
    await ensure_patient_visible(session, staff, patient.id)
    return patient


def _out(row: ExamBooking) -> BookingOut:
    return BookingOut.model_validate(row.model_dump())


@router.get("/consent", response_model=Consent)
async def consent(staff: ReaderDep) -> Consent:  # noqa: ARG001 - the permission is the check
    """The data-use authorisation the patient accepts before binding (its current version)."""
    return Consent(version=CONSENT_VERSION, text=CONSENT_TEXT)


@router.get("/catalogue")
async def standard_items(staff: ReaderDep) -> list[dict[str, Any]]:  # noqa: ARG001
    """The platform's standard exam items, which vendor items are mapped to."""
    return [item.model_dump() for item in catalogue().items.values()]


@router.post(
    "/accounts",
    response_model=BindOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "Already bound: the account"},
        409: {"description": "104: the account is bound to another patient"},
        422: {"description": "Consent not accepted, or the patient record lacks a field"},
        502: {"description": "104: the vendor refused"},
        503: {"description": "104: the vendor is unreachable; try again"},
    },
    description=f"US-K1 绑定体检账号. Codes: {_codes('US-K1')}",
)
async def bind(
    body: BindIn,
    response: Response,
    container: ContainerDep,
    session: SessionDep,
    staff: BookerDep,
) -> Any:
    """Binds the patient's exam account after they accept the data-use authorisation; the
    vendor creates an account when it finds none (103)."""
    if not body.accepted:
        raise field_error(("body", "accepted"), "the patient must accept the authorisation")
    if body.consent_version != CONSENT_VERSION:
        raise field_error(("body", "consent_version"), f"the current version is {CONSENT_VERSION}")
    patient = await _patient(session, container, staff, body)
    bound = await session.get(ExamAccount, patient.id)
    if bound is not None:
        response.status_code = status.HTTP_200_OK
        return BindOut(
            code="0", level="成功", message="已绑定体检账号", account_no=bound.account_no
        )
    identity = ("sex", "birth_date", "id_number")
    if not all(getattr(patient, name) for name in identity):
        # An older copy of the record: the HIS's current one may hold them (HIS-2).
        with contextlib.suppress(UnknownPatient, HisUnavailable):
            patient = await upsert_patient(
                session, await fetch_patient(session, container.his, patient.his_patient_id)
            )
    for name in identity:
        if not getattr(patient, name):
            raise field_error(("patient", name), "the patient record lacks it; update the HIS")
    assert patient.birth_date is not None
    assert patient.id_number is not None
    try:
        answer = await container.exams.bind(
            BindRequest(
                name=patient.name,
                sex=SEX_CODES[patient.sex or "M"],
                birth_date=compact(patient.birth_date),
                id_number=patient.id_number,
            )
        )
    except ExamUnavailable:
        return _bind_failed("体检机构系统暂不可用，请稍后重试", status.HTTP_503_SERVICE_UNAVAILABLE)
    except ExamRefused as exc:
        return _bind_failed(str(exc)[:200], status.HTTP_502_BAD_GATEWAY)
    other = (
        await session.exec(select(ExamAccount).where(ExamAccount.account_no == answer.account_no))
    ).first()
    if other is not None:
        return _bind_failed("该体检账号已绑定其他患者", status.HTTP_409_CONFLICT)
    now = utcnow()
    try:
        session.add(
            ExamAccount(
                patient_id=patient.id,
                account_no=answer.account_no,
                consent_version=body.consent_version,
                consented_at=now,
                consented_by=staff.id,
                created_by_vendor=answer.code == "103",
                bound_at=now,
            )
        )
        audit.record(
            session,
            actor_type="staff",
            actor_id=staff.id,
            action="exam.account_bound",
            target_type="patient",
            target_id=patient.id,
            consent_version=body.consent_version,
            created_by_vendor=answer.code == "103",
        )
        await session.commit()
    except DBAPIError as exc:
        await session.rollback()
        return _bind_failed(
            f"保存失败（{type(exc).__name__}）", status.HTTP_503_SERVICE_UNAVAILABLE
        )
    if answer.code == "103":
        found = reply("103", params="姓名、性别、出生日期、身份证号")
        return BindOut(
            code=found.code,
            level=found.level,
            message=f"{found.message}，体检机构已新建账号",
            account_no=answer.account_no,
        )
    return BindOut(code="0", level="成功", message="绑定成功", account_no=answer.account_no)


def _bind_failed(reason: str, http_status: int) -> JSONResponse:
    failed = reply("104", reason=reason)
    return JSONResponse(
        {"code": failed.code, "level": failed.level, "message": failed.message},
        status_code=http_status,
    )


@router.post(
    "/bookings",
    response_model=BookingOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"description": "The patient has no bound exam account"},
        422: {"description": "201: the date is outside today..today+14, or a field is invalid"},
        503: {"description": "The workflow service is unreachable; try again"},
    },
    description=f"US-K2 预约体检. Codes: {_codes('US-K2')}",
)
async def request_booking(
    body: BookingIn, container: ContainerDep, session: SessionDep, staff: BookerDep
) -> Any:
    """The patient asks for an exam on a date: their personalised list is drawn up from their
    questionnaire answers and waits for a doctor's review, then it is booked (a refusal by the
    vendor, 202, shows on the booking)."""
    patient = await _patient(session, container, staff, body)
    profile = await hospital_profile(
        session, container.settings, container.settings.default_hospital_code
    )
    now = utcnow()
    today = now.astimezone(profile.tz).date()
    if not within_window(body.exam_date, today):
        start, end = booking_window(today)
        refused = reply("201", start=f"{start:%Y-%m-%d}", end=f"{end:%Y-%m-%d}")
        return JSONResponse(
            {
                "code": refused.code,
                "level": refused.level,
                "message": refused.message,
                "detail": [{"loc": ["body", "exam_date"], "msg": refused.message}],
            },
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    account = await session.get(ExamAccount, patient.id)
    if account is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "该患者尚未绑定体检账号")
    department = body.department_code or staff.department_code or "health_management"
    listed = await drawn_list(session, patient, today)
    review_by = now + timedelta(hours=container.settings.exam_review_hours)
    booking = ExamBooking(
        workflow_id="",
        patient_id=patient.id,
        department_code=department,
        account_no=account.account_no,
        exam_date=body.exam_date,
        status="reviewing",
        listed=[i.model_dump() for i in listed],
        review_by=review_by,
        requested_by=staff.id,
    )
    booking.workflow_id = exam_workflow_id(booking.id)
    session.add(booking)
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="exam.requested",
        target_type="exam_booking",
        target_id=booking.id,
        patient_id=patient.id,
        exam_date=body.exam_date.isoformat(),
    )
    await session.flush()
    await container.temporal.start_workflow(
        EXAM_WORKFLOW,
        ExamInput(
            booking_id=booking.id,
            patient_id=patient.id,
            department_code=department,
            hospital_code=profile.code,
            timezone=profile.tz.key,
            exam_date=body.exam_date,
            stage="reviewing",
            listed=listed,
            review_by=review_by,
        ),
        id=booking.workflow_id,
        task_queue=container.settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    await session.commit()
    return _out(booking)


async def _visible(session: SessionDep, staff: StaffPrincipal, booking_id: str) -> ExamBooking:
    row = await session.get(ExamBooking, booking_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no exam booking with id '{booking_id}'")
    await ensure_visible(
        session, staff, patient_id=row.patient_id, department_code=row.department_code
    )
    return row


@router.get("/bookings", response_model=Page[BookingOut])
async def bookings(
    session: SessionDep,
    staff: ReaderDep,
    booking_status: Annotated[str | None, Query(alias="status", max_length=16)] = None,
    limit: Count = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Page[BookingOut]:
    query = select(ExamBooking).where(
        record_filter(staff, ExamBooking.patient_id, ExamBooking.department_code)
    )
    if booking_status is not None:
        query = query.where(ExamBooking.status == booking_status)
    total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
    rows = await session.exec(
        query.order_by(col(ExamBooking.created_at).desc(), col(ExamBooking.id))
        .limit(limit)
        .offset(offset)
    )
    return Page(items=[_out(r) for r in rows.all()], total=int(total), limit=limit, offset=offset)


@router.get("/bookings/{booking_id}", response_model=BookingDetail)
async def booking(booking_id: Key, session: SessionDep, staff: ReaderDep) -> BookingDetail:
    row = await _visible(session, staff, booking_id)
    results = await results_of(session, row.exam_no) if row.exam_no else []
    return BookingDetail.model_validate(
        {
            **row.model_dump(),
            "results": [ResultOut.model_validate(r.model_dump()) for r in results],
        }
    )


@router.post(
    "/bookings/{booking_id}/review",
    response_model=ExamState,
    responses={409: {"description": "Not waiting for a review, or not an optional item"}},
)
async def review(
    booking_id: Key,
    body: ReviewIn,
    container: ContainerDep,
    session: SessionDep,
    staff: ReviewerDep,
) -> ExamState:
    """The doctor ticks the optional items to book (the required ones always are)."""
    row = await _visible(session, staff, booking_id)
    handle = container.temporal.get_workflow_handle(row.workflow_id)
    try:
        state: ExamState = await handle.execute_update(
            UPDATE_REVIEW, Review(by=staff.id, ticked=body.ticked), result_type=ExamState
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        raise HTTPException(status.HTTP_409_CONFLICT, reason) from exc
    except RPCError as exc:
        if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise
        raise HTTPException(status.HTTP_409_CONFLICT, "该体检流程已结束") from exc
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="exam.reviewed",
        target_type="exam_booking",
        target_id=row.id,
        patient_id=row.patient_id,
        ticked=body.ticked,
    )
    await session.commit()
    return state


@router.get("/held", response_model=list[HeldOut])
async def held(session: SessionDep, staff: ReaderDep) -> list[HeldOut]:
    """Results whose vendor item matched no standard item (501), waiting for a mapping: those
    of the patients in the caller's scope."""
    rows = await held_results(session, patient_filter(staff, ExamResultHold.patient_id))
    return [HeldOut.model_validate(h.model_dump()) for h in rows]


class Mapped(BaseModel):
    vendor_code: str
    standard_code: str
    resaved_exams: list[str]


@router.post("/mappings", response_model=Mapped)
async def mapping(body: MappingIn, session: SessionDep, staff: MapperDep) -> Mapped:
    """Maps a vendor item to a standard item; the results held for it are saved at once."""
    try:
        exams = await map_item(session, body.vendor_code, body.standard_code, staff.id)
    except UnknownItem as exc:
        raise field_error(("body", "standard_code"), str(exc)) from exc
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="exam.item_mapped",
        target_type="exam_item",
        target_id=body.vendor_code,
        standard_code=body.standard_code,
        resaved_exams=exams,
    )
    await session.commit()
    return Mapped(
        vendor_code=body.vendor_code, standard_code=body.standard_code, resaved_exams=exams
    )
