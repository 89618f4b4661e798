"""The send log (MSG-3), the push interface other systems call (MSG-5) and batch sends (MSG-2).

A push is validated and rendered before anything is stored or started: an unknown template, a
missing variable or an invalid number is a 422 naming the field, and leaves nothing behind. The
caller's idempotency key makes a retried push return the first message instead of sending again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, model_validator
from temporalio.service import RPCError

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_visible, require
from api.schemas import AttemptOut, MessageDetail, MessageOut, Page, links
from contracts.messages import (
    BATCH_WORKFLOW,
    PUSH_OUTBOX_WORKFLOW,
    QUERY_BATCH_PROGRESS,
    SIGNAL_PUSHED,
    BatchInput,
    BatchProgress,
    MessageRequest,
    OutboxInput,
    Pushed,
    push_outbox_id,
)
from core.logs import get_logger, mask_text
from core.models import (
    MessageBatch,
    MessageStatus,
    OutboundMessage,
    StaffRole,
    new_id,
    utcnow,
)
from core.validation import Count, Int53, Key, Line, Real, SaneDateTime, Text
from integrations.his import HisUnavailable
from services import audit
from services.messages import MessageRejected, message_by_key
from services.patients import (
    UnknownPatient,
    known_or_fetched,
    patient_ids_by_his_id,
)
from services.staff import StaffPrincipal
from services.staff_lists import (
    MessageFilter,
    batch_status_counts,
    list_messages,
    mask_phone,
    message_attempts,
)

router = APIRouter(prefix="/api/messages", tags=["messages"])
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.MESSAGES_READ))]
log = get_logger(__name__)

MAX_BATCH = 20_000
Scalar = Text | Int53 | Real | bool


def message_out(container: ContainerDep, message: OutboundMessage) -> dict[str, Any]:
    # A patient link is the patient's credential: in production staff see the text without it.
    # Elsewhere the send log doubles as the demo's and the tests' view of what a patient got.
    hide_links = container.settings.environment == "production"
    return {
        **message.model_dump(),
        "body": mask_text(message.body) if hide_links else message.body,
        "recipient_masked": mask_phone(message.recipient_phone or ""),
    }


@router.get("", response_model=Page[MessageOut])
async def search_messages(
    container: ContainerDep,
    session: SessionDep,
    staff: ReaderDep,
    sent_from: Annotated[SaneDateTime | None, Query(alias="from")] = None,
    sent_to: Annotated[SaneDateTime | None, Query(alias="to")] = None,
    receiver: Annotated[Key | None, Query(description="phone number or patient id")] = None,
    sender: Key | None = None,
    department_code: Key | None = None,
    message_status: Annotated[MessageStatus | None, Query(alias="status")] = None,
    channel: Key | None = None,
    category: Key | None = None,
    workflow_id: Key | None = None,
    batch_id: Key | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[Count, Query()] = 0,
) -> Page[MessageOut]:
    filters = MessageFilter(
        sent_from=sent_from,
        sent_to=sent_to,
        receiver=receiver,
        sender=sender,
        department_code=department_code,
        status=message_status.value if message_status else None,
        channel=channel,
        category=category,
        workflow_id=workflow_id,
        batch_id=batch_id,
    )
    rows, total = await list_messages(session, staff, filters, limit=limit, offset=offset)
    items = [MessageOut.model_validate(message_out(container, m)) for m in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


class PushTo(BaseModel):
    patient_id: Line | None = Field(default=None, description="the patient's HIS id")
    phone: Line | None = Field(default=None, description="mainland mobile or E.164 number")

    @model_validator(mode="after")
    def _exactly_one(self) -> PushTo:
        if (self.patient_id is None) == (self.phone is None):
            raise ValueError("give exactly one of patient_id and phone")
        return self


class PushMessage(BaseModel):
    idempotency_key: Annotated[
        Line, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
    ]
    to: PushTo
    template: Annotated[Line, Field(min_length=1, max_length=64)]
    variables: dict[Line, Scalar] = Field(default_factory=dict, max_length=50)
    urgent: bool = False
    department_code: Line | None = Field(default=None, max_length=32)


class PushAccepted(BaseModel):
    message_id: str
    workflow_id: str
    status: str
    duplicate: bool


def _reject(exc: MessageRejected) -> RequestValidationError:
    loc = ("body", *exc.field.split("."))
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": exc.reason}])


def _fingerprint(body: PushMessage) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()


PushDep = Annotated[StaffPrincipal, Depends(require(Permission.MESSAGES_PUSH))]


@router.post(
    "",
    response_model=PushAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"description": "Duplicate idempotency key: the message it created before"},
        404: {"description": "Unknown patient"},
        409: {"description": "Idempotency key reused for a different message"},
        422: {"description": "Invalid number, unknown template or missing variable"},
        **links(202, "message_id", ("GET", "/api/messages/{message_id}", "message_id")),
    },
)
async def push_message(
    body: PushMessage,
    response: Response,
    container: ContainerDep,
    session: SessionDep,
    caller: PushDep,
) -> PushAccepted:
    prefix = "api" if caller.role == StaffRole.INTEGRATION else "staff"
    key = f"push:{prefix}:{caller.id}:{body.idempotency_key}"
    workflow_id = push_outbox_id(container.settings.temporal_task_queue, key)
    fingerprint = _fingerprint(body)
    existing = await message_by_key(session, key)
    if existing is not None:
        if existing.variables.get("_push_fingerprint") != fingerprint:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"idempotency_key '{body.idempotency_key}' was used for a different message",
            )
        response.status_code = status.HTTP_200_OK
        return PushAccepted(
            message_id=existing.id, workflow_id=workflow_id, status=existing.status, duplicate=True
        )

    patient_id = None
    if body.to.patient_id is not None:
        try:
            patient = await known_or_fetched(session, container.his, body.to.patient_id)
        except UnknownPatient as exc:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"no patient with HIS id '{body.to.patient_id}'"
            ) from exc
        except HisUnavailable as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "HIS unreachable: retry later"
            ) from exc
        patient_id = patient.id
    department = body.department_code if caller.department_code is None else caller.department_code
    request = MessageRequest(
        key=key,
        template=body.template,
        patient_id=patient_id,
        phone=body.to.phone,
        variables=dict(body.variables),
        urgent=body.urgent,
        hospital_code=container.settings.default_hospital_code,
        department_code=department,
        sender=f"{prefix}:{caller.id}",
    )
    try:
        message = await container.composer.compose(session, request, now=utcnow())
    except MessageRejected as exc:
        raise _reject(exc) from exc
    message.variables = {**message.variables, "_push_fingerprint": fingerprint}
    await session.flush()
    try:
        # Before the commit: a failed signal leaves nothing behind, and the outbox looks again
        # for a row it finds not committed yet.
        await container.temporal.start_workflow(
            PUSH_OUTBOX_WORKFLOW,
            OutboxInput(),
            id=workflow_id,
            task_queue=container.settings.temporal_task_queue,
            start_signal=SIGNAL_PUSHED,
            start_signal_args=[Pushed(message_ids=[message.id])],
        )
    except RPCError as exc:
        log.error("message workflow start failed", key=key, error=str(exc))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "workflow service unavailable, retry later"
        ) from exc
    # After the start: the audit chain's lock is taken at flush and held until commit.
    audit.record(
        session,
        actor_type=prefix,
        actor_id=caller.id,
        action="message.pushed",
        target_type="outbound_message",
        target_id=message.id,
        patient_id=message.patient_id,
        template=body.template,
    )
    await session.commit()
    return PushAccepted(
        message_id=message.id, workflow_id=workflow_id, status=message.status, duplicate=False
    )


class BatchRecipients(BaseModel):
    patient_ids: list[Line] = Field(
        min_length=1, max_length=MAX_BATCH, description="HIS patient ids"
    )


class CreateBatch(BaseModel):
    name: Annotated[Line, Field(min_length=1, max_length=100)]
    template: Annotated[Line, Field(min_length=1, max_length=64)]
    variables: dict[Line, Scalar] = Field(default_factory=dict, max_length=50)
    recipients: BatchRecipients


class BatchOut(BaseModel):
    id: str
    workflow_id: str
    name: str
    template: str
    category: str
    status: str
    total: int
    processed: int | None
    counts: dict[str, int]
    unknown_patients: list[str] = Field(default_factory=list)
    created_at: datetime
    finished_at: datetime | None


StaffSenderDep = Annotated[StaffPrincipal, Depends(require(Permission.MESSAGES_BATCH))]


@router.post(
    "/batches",
    response_model=BatchOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=links(202, "id", ("GET", "/api/messages/batches/{batch_id}", "batch_id")),
)
async def create_batch(
    body: CreateBatch, container: ContainerDep, session: SessionDep, staff: StaffSenderDep
) -> BatchOut:
    spec = await container.composer.templates.resolve(
        session, body.template, department_code=staff.department_code, staff_id=staff.id
    )
    if spec is None:
        raise _reject(MessageRejected("template", f"unknown template '{body.template}'"))
    missing = sorted(set(spec.variables) - set(body.variables))
    if missing:
        raise _reject(MessageRejected(f"variables.{missing[0]}", f"missing ({', '.join(missing)})"))
    wanted = list(dict.fromkeys(body.recipients.patient_ids))
    ids = await patient_ids_by_his_id(session, wanted)
    unknown = [p for p in wanted if p not in ids]
    recipients = [ids[p] for p in wanted if p in ids]
    if not recipients:
        raise _reject(MessageRejected("recipients.patient_ids", "none of these patients is known"))
    batch_id = new_id()
    batch = MessageBatch(
        id=batch_id,
        workflow_id=f"batch:{batch_id}",
        name=body.name,
        category=spec.category,
        template=spec.code,
        variables=dict(body.variables),
        recipients=recipients,
        total=len(recipients),
        created_by=staff.id,
        department_code=staff.department_code,
        hospital_code=container.settings.default_hospital_code,
    )
    session.add(batch)
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="message_batch.created",
        target_type="message_batch",
        target_id=batch_id,
        total=len(recipients),
        template=spec.code,
    )
    await session.flush()
    try:
        await container.temporal.start_workflow(
            BATCH_WORKFLOW,
            BatchInput(
                batch_id=batch_id,
                template=spec.code,
                variables=dict(body.variables),
                hospital_code=batch.hospital_code,
                department_code=staff.department_code,
                sender=f"staff:{staff.id}",
                total=len(recipients),
            ),
            id=batch.workflow_id,
            task_queue=container.settings.temporal_task_queue,
        )
    except RPCError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "workflow service unavailable, retry later"
        ) from exc
    await session.commit()
    out = await _batch_out(container, session, batch)
    return out.model_copy(update={"unknown_patients": unknown})


@router.get("/batches/{batch_id}", response_model=BatchOut)
async def get_batch(
    batch_id: Key, container: ContainerDep, session: SessionDep, staff: ReaderDep
) -> BatchOut:
    batch = await session.get(MessageBatch, batch_id)
    if batch is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no batch with id '{batch_id}'")
    # A batch names no one patient: seen by its department (and hospital-wide staff).
    await ensure_visible(session, staff, patient_id=None, department_code=batch.department_code)
    return await _batch_out(container, session, batch)


async def _batch_out(container: ContainerDep, session: SessionDep, batch: MessageBatch) -> BatchOut:
    counts = await batch_status_counts(session, batch.id)
    processed = None
    try:
        progress = await container.temporal.get_workflow_handle(batch.workflow_id).query(
            QUERY_BATCH_PROGRESS, result_type=BatchProgress, rpc_timeout=_query_timeout(container)
        )
        processed = progress.processed
    except Exception as exc:  # noqa: BLE001 - progress is optional; the counts are the record
        log.info("batch progress query failed", batch_id=batch.id, error=str(exc))
    return BatchOut(
        id=batch.id,
        workflow_id=batch.workflow_id,
        name=batch.name,
        template=batch.template,
        category=batch.category,
        status=batch.status,
        total=batch.total,
        processed=processed,
        counts=counts,
        created_at=batch.created_at,
        finished_at=batch.finished_at,
    )


def _query_timeout(container: ContainerDep) -> timedelta:
    return timedelta(seconds=container.settings.temporal_query_timeout_seconds)


@router.get("/{message_id}", response_model=MessageDetail)
async def get_message(
    message_id: Key, container: ContainerDep, session: SessionDep, staff: ReaderDep
) -> MessageDetail:
    message = await session.get(OutboundMessage, message_id)
    if message is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no message with id '{message_id}'")
    # A hospital-wide message (no department) is for hospital-wide staff only.
    await ensure_visible(
        session, staff, patient_id=message.patient_id, department_code=message.department_code
    )
    attempts = await message_attempts(session, message.id)
    return MessageDetail.model_validate(
        {
            **message_out(container, message),
            "attempts": [AttemptOut.model_validate(a.model_dump()) for a in attempts],
        }
    )
