"""The patient's home-nursing page (NUR-1..3), reached from a signed link (WeChat or SMS): the
items on offer with their prices, an order (time, address, the informed consent accepted; the
real-name check and the payment follow), and their orders as they progress, with what the
patient does on each: pay, sign at the end (drawn on the page), rate, cancel while the rules
allow, complain (a complaint case). Works without script."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ValidationError
from sqlmodel import col, select
from starlette.datastructures import UploadFile

from api.deps import ContainerDep, SessionDep
from api.form_body import BodyTooLarge, MalformedBody, read_fields, read_form
from api.form_view import error_text
from api.routers.patient_pages import linked_patient, render_page
from complaints.lifecycle import CATEGORY_NAMES
from contracts.complaint import PATIENT as COMPLAINANT
from contracts.nursing import (
    PATIENT,
    UPDATE_CANCEL,
    UPDATE_RATE,
    UPDATE_SIGN,
    Cancel,
    NursingRating,
    PatientSignature,
)
from core.models import NursingItem, NursingOrder, Patient, utcnow
from core.validation import Key
from nursing.consent import CONSENT_TEXT
from nursing.lifecycle import STATUS_NAMES
from pathways.answers import AnswerError, ErrorCode
from pathways.form_definition import Question
from services import uploads
from services.complaints import NewComplaint, open_complaint
from services.nursing_orders import (
    BOOKING_HORIZON,
    EARLIEST_AHEAD,
    NewOrder,
    OrderRefused,
    place_order,
    take_step,
)
from services.updates import UpdateConflict

router = APIRouter(tags=["patient pages"], include_in_schema=False)

MAX_FORM_BYTES = 8 * 1024
# The signature confirming a visit, taken as a form's signature question is.
SIGNATURE = Question(id="patient_signature", type="signature", text="患者签名确认")
PAY_LINK_VALID = timedelta(hours=2)


def _message(container: ContainerDep, code: int, heading: str, line: str) -> HTMLResponse:
    return render_page(
        container, "message.html", code, heading=heading, lines=[line], tone="notice"
    )


async def _patient(
    token: str, container: ContainerDep, session: SessionDep
) -> Patient | HTMLResponse:
    return await linked_patient(token, container, session, expired="请重新从医院公众号进入。")


def _local_input(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M")


async def _page(
    token: str,
    container: ContainerDep,
    session: SessionDep,
    patient: Patient,
    code: int = status.HTTP_200_OK,
    *,
    error: str | None = None,
    notice: str | None = None,
    notice_tone: str = "ok",
) -> HTMLResponse:
    every = (await session.exec(select(NursingItem).order_by(col(NursingItem.code)))).all()
    items = [i for i in every if i.active]
    names = {i.code: i.name for i in every}
    orders = (
        await session.exec(
            select(NursingOrder)
            .where(NursingOrder.patient_id == patient.id)
            .order_by(col(NursingOrder.created_at).desc())
            .limit(10)
            # After a step, the order as the workflow has just written it, not as this request
            # first read it.
            .execution_options(populate_existing=True)
        )
    ).all()
    now = utcnow()
    tz = container.settings.tz
    pay_links = {
        o.id: f"/pay/{container.links.issue(o.payment_order_id, now + PAY_LINK_VALID)}"
        for o in orders
        if o.status == "paying" and o.payment_order_id
    }
    return render_page(
        container,
        "nursing.html",
        code,
        token=token,
        items=items,
        item_names=names,
        orders=orders,
        status_names=STATUS_NAMES,
        pay_links=pay_links,
        complaint_categories=CATEGORY_NAMES,
        consent_text=CONSENT_TEXT,
        earliest=_local_input(now + EARLIEST_AHEAD, tz),
        latest=_local_input(now + BOOKING_HORIZON, tz),
        address=patient.address,
        form_key=uuid.uuid4().hex,
        error=error,
        notice=notice,
        notice_tone=notice_tone,
    )


@router.get("/n/{token}", response_class=HTMLResponse)
async def nursing_page(token: Key, container: ContainerDep, session: SessionDep) -> HTMLResponse:
    found = await _patient(token, container, session)
    if isinstance(found, HTMLResponse):
        return found
    return await _page(token, container, session, found)


@router.post("/n/{token}/order", response_class=HTMLResponse)
async def order(
    token: Key, request: Request, container: ContainerDep, session: SessionDep
) -> HTMLResponse:
    found = await _patient(token, container, session)
    if isinstance(found, HTMLResponse):
        return found
    posted = await read_fields(request, MAX_FORM_BYTES) or {}
    if posted.get("consent") != "yes":
        return await _page(
            token, container, session, found, 422, error="请阅读并勾选同意知情同意书。"
        )
    address = posted.get("address", "").strip()
    if not 4 <= len(address) <= 200:
        return await _page(token, container, session, found, 422, error="请填写完整的服务地址。")
    try:
        visit_at = datetime.fromisoformat(posted.get("visit_at", "")).replace(
            tzinfo=container.settings.tz
        )
    except ValueError:
        return await _page(token, container, session, found, 422, error="请选择上门时间。")
    key = posted.get("idempotency_key", "")[:100] or uuid.uuid4().hex
    try:
        await place_order(
            session,
            container.temporal,
            container.settings,
            NewOrder(found, posted.get("item_code", ""), visit_at, address, key),
            actor_type="patient",
            actor_id=found.id,
            now=utcnow(),
        )
    except OrderRefused as exc:
        why = {"item_code": "请选择护理项目。", "visit_at": "上门时间需在1小时后、14天内。"}
        return await _page(
            token, container, session, found, 422, error=why.get(exc.field, str(exc))
        )
    await session.commit()
    return await _page(
        token,
        container,
        session,
        found,
        status.HTTP_201_CREATED,
        notice="订单已提交，正在核对您的实名信息，核对通过后请完成支付。",
    )


async def _own_order(session: SessionDep, patient: Patient, order_id: str) -> NursingOrder | None:
    row = await session.get(NursingOrder, order_id)
    return row if row is not None and row.patient_id == patient.id else None


async def _act(
    token: str,
    order_id: str,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    build: Any,
    update: str,
    done: str,
) -> HTMLResponse:
    found = await _patient(token, container, session)
    if isinstance(found, HTMLResponse):
        return found
    row = await _own_order(session, found, order_id)
    if row is None:
        return _message(container, status.HTTP_404_NOT_FOUND, "订单不存在", "未找到该订单。")
    posted = await read_fields(request, MAX_FORM_BYTES) or {}
    try:
        argument: BaseModel = build(posted)
    except (ValidationError, ValueError, KeyError):
        return await _page(
            token, container, session, found, 422, notice="提交的内容不完整。", notice_tone="notice"
        )
    try:
        await take_step(session, container.temporal, row, update, argument)
    except UpdateConflict as exc:
        return await _page(
            token, container, session, found, 409, notice=str(exc), notice_tone="notice"
        )
    return await _page(token, container, session, found, notice=done)


@router.post("/n/{token}/orders/{order_id}/sign", response_class=HTMLResponse)
async def sign(
    token: Key, order_id: Key, request: Request, container: ContainerDep, session: SessionDep
) -> HTMLResponse:
    """The patient's signature at the end of the visit: drawn on the page (posted as its PNG),
    or a picture of it uploaded without the script. Stored encrypted like a form's signature,
    then the order told which upload it is."""
    found = await _patient(token, container, session)
    if isinstance(found, HTMLResponse):
        return found
    row = await _own_order(session, found, order_id)
    if row is None:
        return _message(container, status.HTTP_404_NOT_FOUND, "订单不存在", "未找到该订单。")
    page = partial(_page, token, container, session, found)
    if row.status != "served":
        return await page(409, notice="该订单当前无需签名。", notice_tone="notice")
    limit = (SIGNATURE.max_bytes or 0) + MAX_FORM_BYTES
    try:
        posted = await read_form(request, limit, max_files=1)
    except BodyTooLarge:
        return await page(413, notice=_signature_error("file_too_large"), notice_tone="notice")
    except MalformedBody:
        return await page(400, notice="提交失败，请重试。", notice_tone="notice")
    try:
        upload = posted.get("signature")
        if not isinstance(upload, UploadFile) or not upload.size:
            return await page(422, notice="请先在签名区域签名。", notice_tone="notice")
        stored = await uploads.store_upload(
            session,
            container.files,
            owner=uploads.UploadOwner.nursing_order(row.id),
            question=SIGNATURE,
            data=await upload.read((SIGNATURE.max_bytes or 0) + 1),
            declared_type=upload.content_type,
        )
    except uploads.UploadRefused as refused:
        return await page(422, notice=_signature_error(refused.code), notice_tone="notice")
    finally:
        await posted.close()
    with uploads.discarded_unless_committed(container.files, [stored]):
        await session.commit()
    signature = PatientSignature(signature=stored.reference)
    try:
        await take_step(session, container.temporal, row, UPDATE_SIGN, signature)
    except UpdateConflict as exc:
        return await page(409, notice=str(exc), notice_tone="notice")
    return await page(notice="已签名确认，感谢您的配合。")


def _signature_error(code: ErrorCode) -> str:
    return error_text(SIGNATURE, AnswerError(SIGNATURE.id, code)).replace("图片", "签名图片")


@router.post("/n/{token}/orders/{order_id}/rate", response_class=HTMLResponse)
async def rate(
    token: Key, order_id: Key, request: Request, container: ContainerDep, session: SessionDep
) -> HTMLResponse:
    return await _act(
        token, order_id, request, container, session,
        lambda p: NursingRating(stars=int(p["stars"])),
        UPDATE_RATE, "感谢您的评价。",
    )  # fmt: skip


@router.post("/n/{token}/orders/{order_id}/cancel", response_class=HTMLResponse)
async def cancel(
    token: Key, order_id: Key, request: Request, container: ContainerDep, session: SessionDep
) -> HTMLResponse:
    return await _act(
        token, order_id, request, container, session,
        lambda p: Cancel(by=PATIENT, by_staff=False, reason=p.get("reason") or "患者取消"),
        UPDATE_CANCEL, "订单已取消，退款将原路退回。",
    )  # fmt: skip


@router.post("/n/{token}/orders/{order_id}/complain", response_class=HTMLResponse)
async def complain(
    token: Key, order_id: Key, request: Request, container: ContainerDep, session: SessionDep
) -> HTMLResponse:
    """A complaint about the order becomes a complaint case for the order's department."""
    found = await _patient(token, container, session)
    if isinstance(found, HTMLResponse):
        return found
    row = await _own_order(session, found, order_id)
    if row is None:
        return _message(container, status.HTTP_404_NOT_FOUND, "订单不存在", "未找到该订单。")
    posted = await read_fields(request, MAX_FORM_BYTES) or {}
    summary = posted.get("summary", "").strip()
    category = posted.get("category", "other")
    if not 2 <= len(summary) <= 500 or category not in CATEGORY_NAMES:
        return await _page(
            token, container, session, found, 422, error="请选择类别并填写投诉内容（500字以内）。"
        )
    case, _ = await open_complaint(
        session,
        container.temporal,
        container.settings,
        NewComplaint(
            patient_id=found.id,
            kind="complaint",
            source="patient",
            category=category,  # type: ignore[arg-type]
            summary=f"上门护理订单：{summary}",
            department_code=row.department_code,
            hospital_code=container.settings.default_hospital_code,
            task_id=None,
            idempotency_key=f"nursing:{row.id}:{posted.get('summary', '')[:40]}",
        ),
        COMPLAINANT,
        utcnow(),
    )
    await session.commit()
    return await _page(
        token,
        container,
        session,
        found,
        notice=f"已收到您的投诉（编号{case.case_no}），我们会尽快处理。",
    )
