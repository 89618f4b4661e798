"""The interfaces the physical-exam vendor calls (seed 003, US-H1..US-H5): the personalised exam
list, the exam guide, item results, the summary report and item dictionary changes.

Each body is signed like the HIS's webhooks and carries the vendor's ``message_id``: a push that
took effect is answered the same way again and changes nothing. Every answer holds the tender's
``code``, ``level`` and ``message``; the HTTP status says what the caller should do with it
(200 done, 202 kept for later, 404 / 422 refused, 503 retry later). A push that fails to save
leaves nothing behind.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, time
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from api.deps import ContainerDep, SessionDep
from api.signed import parse, signed_body, signed_json
from contracts.exam import (
    EXAM_DICTIONARY_WORKFLOW,
    EXAM_WORKFLOW,
    SIGNAL_PUSHED,
    DictionaryChange,
    ExamInput,
    Pushed,
    dictionary_workflow_id,
    exam_workflow_id,
)
from contracts.messages import MessageRequest
from core.logs import get_logger
from core.models import ExamBooking, ExamDictionaryChange, Patient, utcnow
from exams.checks import mismatched_fields
from exams.codes import Reply, documented, reply
from integrations.exam_protocol import (
    Customer,
    DictionaryPush,
    ExamItem,
    ExamListQuery,
    ExamListReply,
    ExamReply,
    GuidePush,
    ReportPush,
    ResultsPush,
    parse_compact,
)
from messaging.categories import Category
from services import audit
from services.exams import (
    MessageConflict,
    account_by_no,
    advance,
    apply_dictionary,
    booking_for_exam,
    customer_of,
    drawn_list,
    latest_answers,
    latest_booking,
    on_record,
    remember,
    replayed,
    save_results,
    vendor_codes,
)
from services.hospitals import hospital_profile
from services.messages import MessageRejected, send_message
from services.search_attributes import for_patient

router = APIRouter(prefix="/integrations/exam", tags=["physical-exam vendor interfaces"])
log = get_logger(__name__)

# What each code means for the caller, as an HTTP status.
HTTP_STATUS = {
    "0": status.HTTP_200_OK,
    "301": status.HTTP_404_NOT_FOUND,
    "401": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "402": status.HTTP_503_SERVICE_UNAVAILABLE,
    "403": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "405": status.HTTP_503_SERVICE_UNAVAILABLE,
    "501": status.HTTP_202_ACCEPTED,
    "502": status.HTTP_503_SERVICE_UNAVAILABLE,
    "601": status.HTTP_503_SERVICE_UNAVAILABLE,
    "701": status.HTTP_202_ACCEPTED,
}
# How long the guide may be in the message itself; a longer one is summarised.
GUIDE_IN_MESSAGE = 120


def _responses(interface: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": f"Done (code 0). Return codes of {interface}:\n\n"
            + documented(interface)
        },
        202: {
            "description": "Kept: 501 held for mapping, 701 kept and retried",
            "model": ExamReply,
        },
        401: {"description": "Bad signature or stale timestamp"},
        404: {"description": "301: no record of the account", "model": ExamReply},
        409: {"description": "message_id reused with a different body"},
        422: {"description": "A field is invalid (named), or 401 / 403", "model": ExamReply},
        503: {
            "description": "402 / 405 / 502 / 601 / 701: not saved or not sent; push again",
            "model": ExamReply,
        },
    }


def _answer(found: Reply, **extra: Any) -> JSONResponse:
    body = {"code": found.code, "level": found.level, "message": found.message, **extra}
    return JSONResponse(body, status_code=HTTP_STATUS.get(found.code, status.HTTP_200_OK))


async def _body(request: Request, container: ContainerDep) -> bytes:
    settings = container.settings
    return await signed_body(
        request,
        settings.exam_webhook_secret.get_secret_value(),
        settings.his_webhook_tolerance_seconds,
    )


def _save_failed(code: str, exc: Exception) -> Reply:
    # The cause, never the statement (which would carry the data).
    log.error("exam push not saved", code=code, error=type(exc).__name__)
    return reply(code, reason=f"数据库写入失败（{type(exc).__name__}）")


async def _customer(
    session: AsyncSession, account_no: str, customer: Customer
) -> tuple[Patient, None] | tuple[None, Reply]:
    """The patient the account is bound to, if the push's customer is them (301 / 401)."""
    found = await account_by_no(session, account_no)
    if found is None:
        return None, reply("301", account_no=account_no)
    _, patient = found
    wrong = mismatched_fields(
        on_record(patient),
        name=customer.name,
        sex=customer.sex,
        birth_date=parse_compact(customer.birth_date),
    )
    if wrong:
        return None, reply("401", params="、".join(wrong))
    return patient, None


async def _seen(
    session: AsyncSession, message_id: str, interface: str, sha: str
) -> JSONResponse | None:
    """The answer to a message that took effect before (the same again), a 409 for its id
    reused with another body, or None for a new message."""
    try:
        before = await replayed(session, message_id, interface, sha)
    except MessageConflict as exc:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)
    return _answer(before) if before is not None else None


Push = TypeVar("Push", GuidePush, ResultsPush, ReportPush)


async def _opened(
    request: Request,
    container: ContainerDep,
    session: AsyncSession,
    model: type[Push],
    interface: str,
) -> tuple[Push, str, Patient] | JSONResponse:
    """A push about one customer's exam, read and checked: the push, its body's digest and
    the patient; or the answer already (a repeat, 301, 401)."""
    body = await _body(request, container)
    push = parse(model, body)
    sha = hashlib.sha256(body).hexdigest()
    seen = await _seen(session, push.message_id, interface, sha)
    if seen is not None:
        return seen
    patient, refused = await _customer(session, push.account_no, push.customer)
    if patient is None:
        assert refused is not None
        return _answer(refused)
    return push, sha, patient


async def _booking(
    session: AsyncSession,
    container: ContainerDep,
    patient: Patient,
    account_no: str,
    exam_no: str,
    exam_date: str | None,
) -> tuple[ExamBooking, bool]:
    """The booking the exam belongs to; one made at the vendor directly is created here (the
    tender: 若客户在健管平台中尚无体检预约信息，则建立体检预约信息)."""
    booking = await booking_for_exam(session, account_no, exam_no)
    if booking is not None:
        booking.exam_no = exam_no
        return booking, False
    profile = await hospital_profile(
        session, container.settings, container.settings.default_hospital_code
    )
    day = parse_compact(exam_date) if exam_date else utcnow().astimezone(profile.tz).date()
    booking = ExamBooking(
        workflow_id="",
        patient_id=patient.id,
        department_code="health_management",
        account_no=account_no,
        exam_no=exam_no,
        exam_date=day,
        status="booked",
        requested_by="vendor",
    )
    booking.workflow_id = exam_workflow_id(booking.id)
    session.add(booking)
    return booking, True


async def _tell_workflow(
    container: ContainerDep, session: AsyncSession, booking: ExamBooking, kind: str
) -> None:
    """Signals the exam's workflow, starting it for a booking made at the vendor."""
    profile = await hospital_profile(
        session, container.settings, container.settings.default_hospital_code
    )
    await container.temporal.start_workflow(
        EXAM_WORKFLOW,
        ExamInput(
            booking_id=booking.id,
            patient_id=booking.patient_id,
            department_code=booking.department_code,
            hospital_code=profile.code,
            timezone=profile.tz.key,
            exam_date=booking.exam_date,
            stage="booked",
        ),
        id=booking.workflow_id,
        task_queue=container.settings.temporal_task_queue,
        search_attributes=await for_patient(
            session, booking.patient_id, department=booking.department_code, hospital=profile.code
        ),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal=SIGNAL_PUSHED,
        start_signal_args=[Pushed(kind=kind, exam_no=booking.exam_no or "")],
    )


async def _took_effect(
    container: ContainerDep,
    session: AsyncSession,
    booking: ExamBooking,
    push: ResultsPush | ReportPush,
    sha: str,
    interface: str,
    kind: Literal["results", "report"],
    outcome: Reply,
    **detail: object,
) -> None:
    """A saved push: its answer remembered, audited, the exam's workflow told, committed."""
    remember(session, push.message_id, interface, sha, outcome)
    audit.record(
        session,
        actor_type="exam_vendor",
        actor_id=None,
        action=f"exam.{kind}_received",
        target_type="exam_booking",
        target_id=booking.id,
        patient_id=booking.patient_id,
        exam_no=push.exam_no,
        **detail,
    )
    await session.flush()
    await _tell_workflow(container, session, booking, kind)
    await session.commit()


# ---- US-H1 -----------------------------------------------------------------------------


@router.post(
    "/us-h1/exam-list",
    response_model=ExamListReply,
    responses=_responses("US-H1"),
    openapi_extra=signed_json(ExamListQuery),
)
async def exam_list(request: Request, container: ContainerDep, session: SessionDep) -> Any:
    """US-H1 获取个性化体检清单: for a bound account whose patient has answered at least one
    questionnaire, the list the doctor reviewed (or, before that, its required items)."""
    query = parse(ExamListQuery, await _body(request, container))
    found = await account_by_no(session, query.account_no)
    if found is None or not await latest_answers(session, found[1].id):
        return _answer(reply("301", account_no=query.account_no))
    _, patient = found
    booking = await latest_booking(session, patient.id)
    if booking is not None and booking.booked_items:
        items = [(i["code"], i["name"]) for i in booking.booked_items]
    else:
        today = utcnow().astimezone(container.settings.tz).date()
        items = [(i.code, i.name) for i in await drawn_list(session, patient, today) if i.required]
    theirs = await vendor_codes(session)
    listed = [ExamItem(code=theirs.get(code, code), name=name) for code, name in items]
    done = reply("0")
    return ExamListReply(
        code=done.code,
        level=done.level,
        message=done.message,
        customer=customer_of(patient),
        items=listed,
    )


# ---- US-H2 -----------------------------------------------------------------------------


def _guide_text(guide: str) -> str:
    text = " ".join(guide.split())
    if text.startswith(("http://", "https://")) or len(text) <= GUIDE_IN_MESSAGE:
        return text
    return text[: GUIDE_IN_MESSAGE - 1] + "…（完整指引请查看体检中心通知）"


@router.post(
    "/us-h2/guide",
    response_model=ExamReply,
    responses=_responses("US-H2"),
    openapi_extra=signed_json(GuidePush),
)
async def guide(request: Request, container: ContainerDep, session: SessionDep) -> Any:
    """US-H2 发送体检指引: checked against the patient on record, stored, and sent to them."""
    opened = await _opened(request, container, session, GuidePush, "US-H2")
    if isinstance(opened, JSONResponse):
        return opened
    push, sha, patient = opened
    try:
        booking, created = await _booking(
            session, container, patient, push.account_no, push.exam_no, push.exam_date
        )
        booking.guide = push.guide
        booking.guide_received_at = utcnow()
        booking.exam_date = parse_compact(push.exam_date)
        advance(booking, "guided")
        audit.record(
            session,
            actor_type="exam_vendor",
            actor_id=None,
            action="exam.guide_received",
            target_type="exam_booking",
            target_id=booking.id,
            patient_id=patient.id,
            exam_no=push.exam_no,
        )
        await session.commit()
    except DBAPIError as exc:
        await session.rollback()
        return _answer(_save_failed("402", exc))

    # The message: built (403 when it cannot be), then handed to delivery (405 when it cannot).
    key = f"exam-guide:{push.exam_no}"
    if Category.REMINDER in (patient.message_opt_outs or []):
        return _answer(reply("405", reason="患者已关闭检查提醒类消息"))
    if not patient.wechat_openid and not patient.phone:
        return _answer(reply("403", reason="患者没有可用的手机号或微信"))
    message_request = MessageRequest(
        key=key,
        template="exam_guide",
        patient_id=patient.id,
        variables={
            "due_at": datetime.combine(
                booking.exam_date, time(8), tzinfo=container.settings.tz
            ).astimezone(UTC),
            "reminder_text": _guide_text(push.guide),
        },
        urgent=True,
        hospital_code=container.settings.default_hospital_code,
        department_code=booking.department_code,
        workflow_id=booking.workflow_id,
        category=Category.REMINDER,
    )
    try:
        await send_message(
            session, container.composer, container.temporal,
            container.settings.temporal_task_queue, message_request, utcnow(),
        )  # fmt: skip
        await _tell_workflow(container, session, booking, "guide")
    except MessageRejected as exc:
        await session.rollback()
        return _answer(reply("403", reason=exc.reason))
    except RPCError as exc:
        await session.rollback()
        log.error("exam guide not handed to delivery", error=str(exc))
        return _answer(reply("405", reason="消息服务暂不可用"))
    done = reply("0")
    remember(session, push.message_id, "US-H2", sha, done)
    await session.commit()
    log.info("exam guide received", booking_id=booking.id, created=created)
    return _answer(done)


# ---- US-H3 -----------------------------------------------------------------------------


@router.post(
    "/us-h3/results",
    response_model=ExamReply,
    responses=_responses("US-H3"),
    openapi_extra=signed_json(ResultsPush),
)
async def results(request: Request, container: ContainerDep, session: SessionDep) -> Any:
    """US-H3 推送体检项目结果: change type 1 add, 2 edit, 3 delete. An item that matches no
    standard item is held (501) and saved once staff map it; a change older than the one
    already applied to an item changes nothing."""
    opened = await _opened(request, container, session, ResultsPush, "US-H3")
    if isinstance(opened, JSONResponse):
        return opened
    push, sha, patient = opened
    try:
        booking, _ = await _booking(
            session, container, patient, push.account_no, push.exam_no, None
        )
        saved = await save_results(
            session,
            exam_no=push.exam_no,
            patient_id=patient.id,
            change_type=push.change_type,
            changed_at=push.changed_at,
            items=push.results,
        )
        advance(booking, "resulted")
        outcome = reply("501", items="、".join(saved.held)) if saved.held else reply("0")
        await _took_effect(
            container, session, booking, push, sha, "US-H3", "results", outcome,
            change_type=push.change_type, saved=saved.saved, held=len(saved.held),
        )  # fmt: skip
    except DBAPIError as exc:
        await session.rollback()
        return _answer(_save_failed("502", exc))
    except RPCError:
        await session.rollback()
        return _answer(reply("502", reason="流程服务暂不可用"))
    return _answer(outcome)


# ---- US-H4 -----------------------------------------------------------------------------


@router.post(
    "/us-h4/report",
    response_model=ExamReply,
    responses=_responses("US-H4"),
    openapi_extra=signed_json(ReportPush),
)
async def report(request: Request, container: ContainerDep, session: SessionDep) -> Any:
    """US-H4 推送体检报告: stored with its conclusions; the exam's workflow then assesses the
    results and opens a follow-up for abnormal ones."""
    opened = await _opened(request, container, session, ReportPush, "US-H4")
    if isinstance(opened, JSONResponse):
        return opened
    push, sha, patient = opened
    try:
        booking, _ = await _booking(
            session, container, patient, push.account_no, push.exam_no, None
        )
        booking.report = push.report
        booking.conclusions = list(push.conclusions)
        booking.report_received_at = utcnow()
        advance(booking, "reported")
        done = reply("0")
        await _took_effect(container, session, booking, push, sha, "US-H4", "report", done)
    except DBAPIError as exc:
        await session.rollback()
        return _answer(_save_failed("601", exc))
    except RPCError:
        await session.rollback()
        return _answer(reply("601", reason="流程服务暂不可用"))
    return _answer(done)


# ---- US-H5 -----------------------------------------------------------------------------


@router.post(
    "/us-h5/items",
    response_model=ExamReply,
    responses=_responses("US-H5"),
    openapi_extra=signed_json(DictionaryPush),
)
async def items(request: Request, container: ContainerDep, session: SessionDep) -> Any:
    """US-H5 变更体检项目明细: applied at once; when it cannot be saved it is kept and applied
    by a retrying workflow (701, HTTP 202), or, when it cannot even be kept, 701 with 503."""
    body = await _body(request, container)
    push = parse(DictionaryPush, body)
    sha = hashlib.sha256(body).hexdigest()
    seen = await _seen(session, push.message_id, "US-H5", sha)
    if seen is not None:
        return seen
    try:
        await apply_dictionary(session, push.change_type, push.items)
        done = reply("0")
        remember(session, push.message_id, "US-H5", sha, done)
        await session.commit()
        return _answer(done)
    except DBAPIError as exc:
        await session.rollback()
        error = type(exc).__name__
    kept = reply("701")
    try:
        session.add(
            ExamDictionaryChange(
                message_id=push.message_id,
                change_type=push.change_type,
                items=[i.model_dump(mode="json") for i in push.items],
                error=error,
            )
        )
        remember(session, push.message_id, "US-H5", sha, kept)
        await session.flush()
        await container.temporal.start_workflow(
            EXAM_DICTIONARY_WORKFLOW,
            DictionaryChange(message_id=push.message_id),
            id=dictionary_workflow_id(push.message_id),
            task_queue=container.settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        await session.commit()
    except (DBAPIError, RPCError) as exc:
        await session.rollback()
        log.error("exam dictionary change lost", error=type(exc).__name__)
        return JSONResponse(
            {"code": kept.code, "level": kept.level, "message": kept.message},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    log.warning("exam dictionary change kept for retry", message_id=push.message_id, error=error)
    return _answer(kept)
