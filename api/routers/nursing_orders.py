"""Home-nursing orders (互联网+护理服务, NUR-2, NUR-3).

The hospital's WeChat app (role ``integration``) places an order for its patient and acts for
them: the signature at the end, the rating, a cancellation. Nurses registered for home visits
take an order, hand it to another, record the visit's steps, raise an alarm and write the
nursing record on the item's template; a head nurse assigns an order nobody took. Each step is
a workflow update whose refusal comes back as a 409 with the reason."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import AwareDatetime, BaseModel, Field
from sqlmodel import col, func, select

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_visible, require
from api.routers.patient_files import file_url
from api.schemas import Page, field_error
from contracts.messages import LinkSpec, MessageRequest
from contracts.nursing import (
    PATIENT,
    UPDATE_ALARM,
    UPDATE_ASSESS,
    UPDATE_ASSIGN,
    UPDATE_CANCEL,
    UPDATE_RATE,
    UPDATE_SIGN,
    UPDATE_TAKE,
    UPDATE_TRANSFER,
    UPDATE_VISIT,
    Alarm,
    Assessment,
    Assign,
    Cancel,
    NursingRating,
    NursingState,
    PatientSignature,
    Take,
    Transfer,
    VisitStep,
)
from core.models import NursingItem, NursingOrder, utcnow
from core.validation import Count, Key, Line, SaneDateTime, Text
from nursing.alarms import AlarmLevel
from nursing.lifecycle import STATUS_NAMES
from pathways.answers import UPLOAD_REFERENCE, check_answers
from services.form_definitions import published_forms
from services.messages import MessageRejected, send_message
from services.nursing_orders import (
    NewOrder,
    OrderRefused,
    order_statistics,
    place_order,
    registered_nurse,
    take_step,
)
from services.patients import UnknownPatient, known_or_fetched
from services.scope import record_filter
from services.staff import StaffPrincipal
from services.updates import UpdateConflict

router = APIRouter(prefix="/api/nursing/orders", tags=["home nursing"])
INVITATION_VALID = timedelta(days=7)
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.NURSING_READ))]
OrdererDep = Annotated[StaffPrincipal, Depends(require(Permission.NURSING_ORDER))]
NurseDep = Annotated[StaffPrincipal, Depends(require(Permission.NURSING_SERVE))]
CancellerDep = Annotated[StaffPrincipal, Depends(require(Permission.NURSING_CANCEL))]


class OrderIn(BaseModel):
    patient_id: Annotated[Line, Field(min_length=1, max_length=64, description="HIS patient id")]
    item_code: Annotated[Line, Field(min_length=1, max_length=32)]
    visit_at: AwareDatetime
    address: Annotated[Text, Field(min_length=4, max_length=200)]
    # The informed consent (知情同意书) the patient signed on their phone, by version.
    consent_accepted: bool
    idempotency_key: Annotated[Line, Field(min_length=8, max_length=100)]


class OrderOut(BaseModel):
    id: str
    workflow_id: str
    patient_id: str
    item_code: str
    price_fen: int
    visit_fee_fen: int
    visit_at: datetime
    status: str
    status_name: str
    nurse_id: str | None
    escalated: bool
    payment_order_id: str | None
    refunded_fen: int
    rating: int | None
    steps: list[dict[str, Any]]
    created_at: datetime
    # Whether the patient signed for the visit; on one order, a short-lived link to the
    # signature they drew (none when it was signed by name in the hospital's app).
    signed: bool = False
    signature_url: str | None = None


class AssignIn(BaseModel):
    nurse_id: Key


class TransferIn(BaseModel):
    to_nurse_id: Key
    reason: Annotated[Text, Field(min_length=2, max_length=300)]


class AlarmIn(BaseModel):
    level: AlarmLevel = "important"
    note: Annotated[Text | None, Field(max_length=300)] = None


class AssessmentIn(BaseModel):
    answers: dict[Annotated[Line, Field(max_length=80)], list[Text]] = Field(max_length=200)


class SignIn(BaseModel):
    signed_name: Annotated[Line, Field(min_length=1, max_length=50)]


class RatingIn(BaseModel):
    stars: int = Field(ge=1, le=5)
    comment: Annotated[Text | None, Field(max_length=500)] = None


class CancelIn(BaseModel):
    reason: Annotated[Text, Field(min_length=2, max_length=300)]


def _out(row: NursingOrder) -> OrderOut:
    return OrderOut.model_validate(
        {
            **row.model_dump(),
            "status_name": STATUS_NAMES.get(row.status, row.status),
            "signed": row.patient_signature is not None,
        }
    )


async def _visible(session: SessionDep, staff: StaffPrincipal, order_id: str) -> NursingOrder:
    row = await session.get(NursingOrder, order_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no nursing order '{order_id}'")
    await ensure_visible(
        session, staff, patient_id=row.patient_id, department_code=row.department_code
    )
    return row


async def _step(
    container: ContainerDep,
    session: SessionDep,
    row: NursingOrder,
    update: str,
    argument: BaseModel,
) -> NursingState:
    try:
        return await take_step(session, container.temporal, row, update, argument)
    except UpdateConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


async def _nurse(session: SessionDep, staff: StaffPrincipal, *, head: bool = False) -> None:
    nurse = await registered_nurse(session, staff.id)
    if nurse is None or (head and not nurse.head_nurse):
        # The role may; the roster says this person does not (yet): a state, not a right.
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "只有护士长可以派单" if head else "您尚未登记为上门护理护士",
        )


class InviteIn(BaseModel):
    patient_id: Annotated[Line, Field(min_length=1, max_length=64, description="HIS patient id")]


class Invited(BaseModel):
    message_key: str
    valid_until: datetime


@router.post("/invitations", response_model=Invited, status_code=status.HTTP_202_ACCEPTED)
async def invite(
    body: InviteIn, container: ContainerDep, session: SessionDep, caller: OrdererDep
) -> Invited:
    """Sends the patient a link to their home-nursing page (valid seven days), where they order
    a visit and follow it."""
    try:
        patient = await known_or_fetched(session, container.his, body.patient_id)
    except UnknownPatient as exc:
        raise field_error(("body", "patient_id"), "the HIS knows no such patient") from exc
    now = utcnow()
    valid_until = now + INVITATION_VALID
    key = f"nursing-invite:{patient.id}:{now:%Y%m%d%H%M%S}"
    request = MessageRequest(
        key=key,
        template="nursing_invite",
        patient_id=patient.id,
        variables={"order_title": "上门护理"},
        link=LinkSpec(task_id=patient.id, expires_at=valid_until, path="n"),
        hospital_code=container.settings.default_hospital_code,
        sender=f"staff:{caller.id}",
    )
    try:
        await send_message(
            session, container.composer, container.temporal,
            container.settings.temporal_task_queue, request, now,
        )  # fmt: skip
    except MessageRejected as exc:
        raise field_error(("body", exc.field), exc.reason) from exc
    await session.commit()
    return Invited(message_key=key, valid_until=valid_until)


@router.post("", response_model=OrderOut, status_code=status.HTTP_201_CREATED)
async def place(
    body: OrderIn,
    response: Response,
    container: ContainerDep,
    session: SessionDep,
    caller: OrdererDep,
) -> OrderOut:
    """Places an order (201; 200 with the order placed before for a key used again): the
    patient's identity is checked, then they pay, then a nurse is found."""
    if not body.consent_accepted:
        raise field_error(("body", "consent_accepted"), "the patient must sign the consent")
    try:
        patient = await known_or_fetched(session, container.his, body.patient_id)
    except UnknownPatient as exc:
        raise field_error(("body", "patient_id"), "the HIS knows no such patient") from exc
    try:
        row, created = await place_order(
            session,
            container.temporal,
            container.settings,
            NewOrder(
                patient,
                body.item_code,
                body.visit_at,
                body.address,
                body.idempotency_key,
                caller.department_code,
            ),
            actor_type="staff",
            actor_id=caller.id,
            now=utcnow(),
        )
    except OrderRefused as exc:
        raise field_error(("body", exc.field), str(exc)) from exc
    await session.commit()
    if not created:
        response.status_code = status.HTTP_200_OK
    return _out(row)


@router.get("", response_model=Page[OrderOut])
async def orders(
    session: SessionDep,
    staff: ReaderDep,
    order_status: Annotated[str | None, Query(alias="status", max_length=16)] = None,
    limit: Count = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Page[OrderOut]:
    query = select(NursingOrder).where(
        record_filter(staff, NursingOrder.patient_id, NursingOrder.department_code)
    )
    if order_status is not None:
        query = query.where(NursingOrder.status == order_status)
    total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
    rows = await session.exec(
        query.order_by(col(NursingOrder.visit_at), col(NursingOrder.id)).limit(limit).offset(offset)
    )
    return Page(items=[_out(r) for r in rows.all()], total=int(total), limit=limit, offset=offset)


@router.get("/stats")
async def stats(
    session: SessionDep,
    staff: ReaderDep,
    placed_from: Annotated[SaneDateTime, Query(alias="from")],
    placed_to: Annotated[SaneDateTime, Query(alias="to")],
) -> dict[str, Any]:
    """Orders by status, item and nurse; money taken, refunded and net; ratings (NUR-3)."""
    return await order_statistics(session, staff, placed_from=placed_from, placed_to=placed_to)


@router.get("/{order_id}", response_model=OrderOut)
async def order(
    order_id: Key, container: ContainerDep, session: SessionDep, staff: ReaderDep
) -> OrderOut:
    row = await _visible(session, staff, order_id)
    out = _out(row)
    if row.patient_signature is not None and UPLOAD_REFERENCE.match(row.patient_signature):
        out.signature_url = file_url(container, row.patient_signature)
    return out


@router.post("/{order_id}/take", response_model=NursingState)
async def take(
    order_id: Key, container: ContainerDep, session: SessionDep, staff: NurseDep
) -> NursingState:
    """A registered nurse qualified for the item takes the order (接单)."""
    row = await _visible(session, staff, order_id)
    await _nurse(session, staff)
    return await _step(container, session, row, UPDATE_TAKE, Take(nurse_id=staff.id))


@router.post("/{order_id}/assign", response_model=NursingState)
async def assign(
    order_id: Key, body: AssignIn, container: ContainerDep, session: SessionDep, staff: NurseDep
) -> NursingState:
    """A head nurse gives an order to a qualified nurse (派单)."""
    row = await _visible(session, staff, order_id)
    await _nurse(session, staff, head=True)
    return await _step(
        container, session, row, UPDATE_ASSIGN, Assign(by=staff.id, nurse_id=body.nurse_id)
    )


@router.post("/{order_id}/transfer", response_model=NursingState)
async def transfer(
    order_id: Key, body: TransferIn, container: ContainerDep, session: SessionDep, staff: NurseDep
) -> NursingState:
    """The nurse hands the order to another qualified nurse, until they reach the patient."""
    row = await _visible(session, staff, order_id)
    await _nurse(session, staff)
    change = Transfer(by=staff.id, to_nurse_id=body.to_nurse_id, reason=body.reason)
    return await _step(container, session, row, UPDATE_TRANSFER, change)


@router.post("/{order_id}/visit/{step}", response_model=NursingState)
async def visit(
    order_id: Key,
    step: Literal["depart", "arrive", "start", "finish"],
    container: ContainerDep,
    session: SessionDep,
    staff: NurseDep,
) -> NursingState:
    """Departure, arrival, the start and the end of the service, in that order."""
    row = await _visible(session, staff, order_id)
    return await _step(container, session, row, UPDATE_VISIT, VisitStep(by=staff.id, step=step))


@router.post("/{order_id}/alarm", response_model=NursingState)
async def alarm(
    order_id: Key, body: AlarmIn, container: ContainerDep, session: SessionDep, staff: NurseDep
) -> NursingState:
    """The nurse's one-press alarm during a visit: the head nurses are texted at once."""
    row = await _visible(session, staff, order_id)
    raised = Alarm(by=staff.id, level=body.level, note=body.note)
    return await _step(container, session, row, UPDATE_ALARM, raised)


@router.post("/{order_id}/assessment", response_model=NursingState)
async def assessment(
    order_id: Key,
    body: AssessmentIn,
    container: ContainerDep,
    session: SessionDep,
    staff: NurseDep,
) -> NursingState:
    """The nursing record on the item's template, checked like a patient's form (every
    problem named at its question)."""
    row = await _visible(session, staff, order_id)
    item = await session.get(NursingItem, row.item_code)
    assert item is not None
    form = (await published_forms(session)).get(item.assessment_form)
    if form is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "the item's template is not published")
    answers, problems = check_answers(form, dict(body.answers))
    if problems:
        raise field_error(("body", "answers", problems[0].question_id), problems[0].message)
    written = Assessment(by=staff.id, answers=answers)
    return await _step(container, session, row, UPDATE_ASSESS, written)


@router.post("/{order_id}/signature", response_model=NursingState)
async def signature(
    order_id: Key, body: SignIn, container: ContainerDep, session: SessionDep, caller: OrdererDep
) -> NursingState:
    """The patient confirms the service was done, signing with their name."""
    row = await _visible(session, caller, order_id)
    signed = PatientSignature(signed_name=body.signed_name)
    return await _step(container, session, row, UPDATE_SIGN, signed)


@router.post("/{order_id}/rating", response_model=NursingState)
async def rating(
    order_id: Key, body: RatingIn, container: ContainerDep, session: SessionDep, caller: OrdererDep
) -> NursingState:
    row = await _visible(session, caller, order_id)
    rated = NursingRating(stars=body.stars, comment=body.comment)
    return await _step(container, session, row, UPDATE_RATE, rated)


@router.post("/{order_id}/cancel", response_model=NursingState)
async def cancel(
    order_id: Key,
    body: CancelIn,
    container: ContainerDep,
    session: SessionDep,
    caller: CancellerDep,
) -> NursingState:
    """Cancels with the refund the rules allow: the patient (through the app) in full until
    the nurse sets out, less the home-visit fee after; staff also once the nurse is there."""
    row = await _visible(session, caller, order_id)
    by_staff = caller.role != "integration"
    who = caller.id if by_staff else PATIENT
    change = Cancel(by=who, by_staff=by_staff, reason=body.reason)
    return await _step(container, session, row, UPDATE_CANCEL, change)
