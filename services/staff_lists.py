"""Read models for staff (work queues, alerts, runs, messages), within their data scope."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy.orm import Bundle
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from core.crypto import blind_index
from core.logs import mask_text
from core.models import (
    Alert,
    CareTask,
    FormResponse,
    MessageAttempt,
    OutboundMessage,
    PathwayRun,
    Patient,
    StaffRole,
    TaskStatus,
)
from core.phones import to_e164
from services.disclosure import Identifier, shown
from services.scope import record_filter
from services.staff import StaffPrincipal

Due = Literal["today", "week", "all"]
R = TypeVar("R")


def mask_phone(phone: str) -> str:
    return mask_text(phone) if phone else ""


class PatientFields(Protocol):
    """What a list shows of a patient: a Patient, or a row of ``PATIENT_BRIEF``."""

    @property
    def id(self) -> str: ...
    @property
    def his_patient_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def phone(self) -> str: ...


# Lists read only these columns of each row's patient: two fields to decrypt a row rather than
# every personal field, and no ORM object per patient.
PATIENT_BRIEF: Bundle[Any] = Bundle(
    "patient", col(Patient.id), col(Patient.his_patient_id), col(Patient.name), col(Patient.phone)
)


def patient_brief(patient: PatientFields, role: StaffRole | None) -> dict[str, Any]:
    """Who a row is about, as the role may see it on a list (SEC-3): the name in full for
    clinicians and pharmacists, masked for everyone else; the phone always masked."""
    return {
        "id": patient.id,
        "his_patient_id": patient.his_patient_id,
        "name": shown(role, Identifier.NAME, patient.name),
        "phone_masked": mask_phone(patient.phone),
    }


def due_window(due: Due, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """Today / this week (Monday to Sunday) in the hospital's timezone (FU-8 to-do lists)."""
    if due == "all":
        return None
    local = now.astimezone(tz)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if due == "week":
        start -= timedelta(days=start.weekday())
        return start, start + timedelta(days=7)
    return start, start + timedelta(days=1)


def _scoped(
    query: SelectOfScalar[R], staff: StaffPrincipal, patient_id: Any, department_code: Any
) -> SelectOfScalar[R]:
    return query.where(record_filter(staff, patient_id, department_code))


async def _page(
    session: AsyncSession,
    query: SelectOfScalar[Any],
    limit: int,
    offset: int,
) -> tuple[Sequence[Any], int]:
    """One page of ``query`` and how many rows it has in all. The count drops the order: on a
    list of tens of thousands, sorting all of them to count them costs more than the page."""
    counted = select(func.count()).select_from(query.order_by(None).subquery())
    total = (await session.exec(counted)).one()
    rows = (await session.exec(query.limit(limit).offset(offset))).all()
    return rows, int(total)


async def _page_with_patients(
    session: AsyncSession,
    entity: type[R],
    patient_of: Any,
    conditions: Sequence[Any],
    order: Sequence[Any],
    limit: int,
    offset: int,
) -> tuple[Sequence[tuple[R, PatientFields]], int]:
    """One page of ``entity`` rows meeting ``conditions``, each with its patient (``patient_of``
    names the row's patient column), and how many there are in all. Only the page is joined:
    the count needs no join (the foreign key cannot drop a row) and no order."""
    counted = select(func.count()).select_from(entity).where(*conditions)
    total = (await session.exec(counted)).one()
    query: Any = (
        select(entity, PATIENT_BRIEF)
        .join(Patient, col(Patient.id) == patient_of)
        .where(*conditions)
        .order_by(*order)
        .limit(limit)
        .offset(offset)
    )
    rows = (await session.exec(query)).all()
    return rows, int(total)


async def list_tasks(
    session: AsyncSession,
    staff: StaffPrincipal,
    *,
    statuses: Sequence[str],
    due: Due,
    now: datetime,
    tz: ZoneInfo,
    plan_id: str | None = None,
    patient_id: str | None = None,
    role: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[tuple[CareTask, PatientFields]], int]:
    conditions = [record_filter(staff, CareTask.patient_id, CareTask.department_code)]
    if statuses:
        conditions.append(col(CareTask.status).in_(statuses))
    if plan_id:
        conditions.append(col(CareTask.plan_id) == plan_id)
    if patient_id:
        conditions.append(col(CareTask.patient_id) == patient_id)
    if role:
        conditions.append(col(CareTask.responsible_role) == role)
    window = due_window(due, now, tz)
    if window:
        conditions += [col(CareTask.due_at) >= window[0], col(CareTask.due_at) < window[1]]
    order = (col(CareTask.due_at), col(CareTask.id))
    return await _page_with_patients(
        session, CareTask, CareTask.patient_id, conditions, order, limit, offset
    )


async def open_work(
    session: AsyncSession,
    staff: StaffPrincipal,
    *,
    until: datetime | None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[tuple[CareTask, PatientFields]], int]:
    """A staff member's queue (FU-8): the tasks out for their role in their scope (phone
    follow-ups, calls, visits) due before ``until`` (None: whenever), the most overdue first."""
    conditions = [
        col(CareTask.action_type) == "staff_task",
        col(CareTask.status) == TaskStatus.SENT,
        col(CareTask.responsible_role) == staff.role.value,
        record_filter(staff, CareTask.patient_id, CareTask.department_code),
    ]
    if until is not None:
        conditions.append(col(CareTask.due_at) < until)
    order = (col(CareTask.due_at), col(CareTask.id))
    return await _page_with_patients(
        session, CareTask, CareTask.patient_id, conditions, order, limit, offset
    )


async def task_response(session: AsyncSession, task_id: str) -> FormResponse | None:
    """The patient's answers to a task's form, if they sent them."""
    found = await session.exec(select(FormResponse).where(FormResponse.task_id == task_id))
    return found.first()


async def list_alerts(
    session: AsyncSession,
    staff: StaffPrincipal,
    *,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[tuple[Alert, PatientFields]], int]:
    conditions = [record_filter(staff, Alert.patient_id, Alert.department_code)]
    if status:
        conditions.append(col(Alert.status) == status)
    order = (col(Alert.raised_at).desc(), col(Alert.id))
    return await _page_with_patients(
        session, Alert, Alert.patient_id, conditions, order, limit, offset
    )


async def list_runs(
    session: AsyncSession,
    staff: StaffPrincipal,
    *,
    status: str | None,
    patient_id: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[tuple[PathwayRun, PatientFields]], int]:
    conditions = [record_filter(staff, PathwayRun.patient_id, PathwayRun.department_code)]
    if status:
        conditions.append(col(PathwayRun.status) == status)
    if patient_id:
        conditions.append(col(PathwayRun.patient_id) == patient_id)
    order = (col(PathwayRun.started_at).desc(), col(PathwayRun.workflow_id))
    return await _page_with_patients(
        session, PathwayRun, PathwayRun.patient_id, conditions, order, limit, offset
    )


@dataclass(frozen=True)
class MessageFilter:
    """The send log's search fields (MSG-3)."""

    sent_from: datetime | None = None
    sent_to: datetime | None = None
    receiver: str | None = None  # a phone number (any format) or an internal patient id
    sender: str | None = None
    department_code: str | None = None
    status: str | None = None
    channel: str | None = None
    category: str | None = None
    workflow_id: str | None = None
    batch_id: str | None = None


async def list_messages(
    session: AsyncSession,
    staff: StaffPrincipal,
    filters: MessageFilter,
    *,
    limit: int,
    offset: int,
) -> tuple[Sequence[OutboundMessage], int]:
    # Department staff see their department's messages; hospital-wide ones are for admins.
    query: Any = _scoped(
        select(OutboundMessage), staff, OutboundMessage.patient_id, OutboundMessage.department_code
    )
    f = filters
    if f.sent_from:
        query = query.where(OutboundMessage.created_at >= f.sent_from)
    if f.sent_to:
        query = query.where(OutboundMessage.created_at < f.sent_to)
    if f.receiver:
        phone = to_e164(f.receiver)
        query = query.where(
            # The numbers are encrypted at rest: match on the blind index (SEC-4).
            OutboundMessage.recipient_phone_index == blind_index("phone", phone)
            if phone
            else OutboundMessage.patient_id == f.receiver
        )
    for column, value in (
        (OutboundMessage.sender, f.sender),
        (OutboundMessage.department_code, f.department_code),
        (OutboundMessage.status, f.status),
        (OutboundMessage.channel, f.channel),
        (OutboundMessage.category, f.category),
        (OutboundMessage.workflow_id, f.workflow_id),
        (OutboundMessage.batch_id, f.batch_id),
    ):
        if value:
            query = query.where(column == value)
    query = query.order_by(col(OutboundMessage.created_at).desc(), col(OutboundMessage.id))
    return await _page(session, query, limit, offset)


async def message_attempts(session: AsyncSession, message_id: str) -> Sequence[MessageAttempt]:
    """A message's delivery attempts, oldest first."""
    attempts = await session.exec(
        select(MessageAttempt)
        .where(MessageAttempt.message_id == message_id)
        .order_by(col(MessageAttempt.created_at))
    )
    return attempts.all()


async def batch_status_counts(session: AsyncSession, batch_id: str) -> dict[str, int]:
    """How many of a batch's messages are in each status."""
    rows = await session.exec(
        select(OutboundMessage.status, func.count())
        .where(OutboundMessage.batch_id == batch_id)
        .group_by(col(OutboundMessage.status))
    )
    return {status_: int(n) for status_, n in rows.all()}
