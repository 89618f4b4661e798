"""Physical exams for staff (PX-1..8): the data-use authorisation and binding a patient's exam
account (US-K1), asking for an exam (the personalised list, the doctor's review, the booking
with the vendor: US-K2), the bookings with their results and report, and mapping the vendor's
items that matched nothing (501) so their held results are saved."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator
from sqlmodel import col, func, select

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_patient_visible, ensure_visible, require
from api.schemas import Page, field_error
from contracts.exam import (
    UPDATE_REVIEW,
    ExamState,
    Review,
)
from contracts.messages import LinkSpec, MessageRequest
from core.models import ExamBooking, ExamResultHold, Patient, utcnow
from core.validation import Count, Key, Line
from exams.catalogue import catalogue
from exams.codes import INTERFACE_CODES, MESSAGES, Reply
from exams.consent import CONSENT_TEXT, CONSENT_VERSION
from integrations.his import HisUnavailable
from services import audit
from services.exam_requests import (
    ExamInProgress,
    MissingIdentity,
    NotBound,
    bind_account,
    request_exam,
)
from services.exams import UnknownItem, held_results, map_item, results_of
from services.messages import MessageRejected, send_message
from services.patients import UnknownPatient, known_or_fetched
from services.scope import patient_filter, record_filter
from services.staff import StaffPrincipal
from services.updates import UpdateConflict, run_update

router = APIRouter(prefix="/api/exams", tags=["physical exams"])
INVITATION_VALID = timedelta(days=7)
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
    consent_version: Annotated[Line, Field(min_length=1, max_length=32)]
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
    vendor_code: Annotated[Line, Field(min_length=1, max_length=64)]
    standard_code: Annotated[Line, Field(min_length=1, max_length=32)]


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


class Invited(BaseModel):
    message_key: str
    workflow_id: str
    valid_until: datetime


@router.post(
    "/invitations",
    response_model=Invited,
    status_code=status.HTTP_202_ACCEPTED,
    responses={503: {"description": "The workflow service is unreachable; try again"}},
)
async def invite(
    body: PatientRef, container: ContainerDep, session: SessionDep, staff: BookerDep
) -> Invited:
    """Texts (or WeChats) the patient a link to their exam page, valid for seven days: there
    they accept the data-use authorisation, bind their account and ask for an exam."""
    patient = await _patient(session, container, staff, body)
    now = utcnow()
    valid_until = now + INVITATION_VALID
    key = f"exam-invite:{patient.id}:{now:%Y%m%d%H%M%S}"
    request = MessageRequest(
        key=key,
        template="exam_invite",
        patient_id=patient.id,
        link=LinkSpec(task_id=patient.id, expires_at=valid_until, path="x"),
        hospital_code=container.settings.default_hospital_code,
        department_code=staff.department_code,
        sender=f"staff:{staff.id}",
    )
    try:
        workflow_id = await send_message(
            session, container.composer, container.temporal,
            container.settings.temporal_task_queue, request, now,
        )  # fmt: skip
    except MessageRejected as exc:
        raise field_error(("body", exc.field), exc.reason) from exc
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="exam.invited",
        target_type="patient",
        target_id=patient.id,
    )
    await session.commit()
    return Invited(message_key=key, workflow_id=workflow_id, valid_until=valid_until)


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
async def bind(body: BindIn, container: ContainerDep, session: SessionDep, staff: BookerDep) -> Any:
    """Binds the patient's exam account after they accept the data-use authorisation; the
    vendor creates an account when it finds none (103)."""
    if not body.accepted:
        raise field_error(("body", "accepted"), "the patient must accept the authorisation")
    if body.consent_version != CONSENT_VERSION:
        raise field_error(("body", "consent_version"), f"the current version is {CONSENT_VERSION}")
    patient = await _patient(session, container, staff, body)
    try:
        bound = await bind_account(
            session,
            container.exams,
            container.his,
            patient,
            consent_version=body.consent_version,
            actor_type="staff",
            actor_id=staff.id,
        )
    except MissingIdentity as exc:
        raise field_error(
            ("patient", exc.field), "the patient record lacks it; update the HIS"
        ) from exc
    answer = {"code": bound.reply.code, "level": bound.reply.level, "message": bound.reply.message}
    if bound.account_no is not None:
        answer["account_no"] = bound.account_no
    return JSONResponse(answer, status_code=bound.http_status)


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
    try:
        booked = await request_exam(
            session,
            container.temporal,
            container.settings,
            patient,
            exam_date=body.exam_date,
            department_code=body.department_code or staff.department_code or "health_management",
            actor_type="staff",
            actor_id=staff.id,
        )
    except NotBound as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, "该患者尚未绑定体检账号") from exc
    except ExamInProgress as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"该患者已有进行中的体检（{exc.booking.exam_date:%Y-%m-%d}），完成后再预约",
        ) from exc
    if isinstance(booked, Reply):
        return JSONResponse(
            {
                "code": booked.code,
                "level": booked.level,
                "message": booked.message,
                "detail": [{"loc": ["body", "exam_date"], "msg": booked.message}],
            },
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    return JSONResponse(_out(booked).model_dump(mode="json"), status_code=status.HTTP_201_CREATED)


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
    review = Review(by=staff.id, ticked=body.ticked)
    try:
        state = await run_update(
            session, container.temporal, row.workflow_id, UPDATE_REVIEW, review, ExamState,
            ended="该体检流程已结束",
        )  # fmt: skip
    except UpdateConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
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
