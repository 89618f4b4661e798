"""The patient's exam page (PX-8), reached from the invitation message: the data-use
authorisation to accept before the exam account is bound (US-K1), a date to ask for an exam
(today to 14 days ahead; US-K2 follows the doctor's review), and their exams as they progress
(the guide, the summary conclusions). Works without script; the link is signed and expires."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse
from sqlmodel import col, select

from api.deps import ContainerDep, SessionDep
from api.form_body import read_fields
from api.routers.patient_pages import linked_patient, render_page
from core.models import ExamAccount, ExamBooking, Patient, utcnow
from core.validation import Key
from exams.checks import booking_window
from exams.codes import Reply
from exams.consent import CONSENT_TEXT, CONSENT_VERSION
from services.exam_requests import (
    IN_PROGRESS,
    ExamInProgress,
    MissingIdentity,
    NotBound,
    bind_account,
    request_exam,
)

router = APIRouter(tags=["patient pages"], include_in_schema=False)

MAX_FORM_BYTES = 4 * 1024
# The health-management centre handles exams asked for by patients themselves.
DEPARTMENT = "health_management"
STATUS_TEXT = {
    "reviewing": "医生审核体检项目中",
    "booking": "正在预约",
    "booked": "已预约",
    "guided": "已收到体检指引",
    "resulted": "体检结果陆续返回中",
    "reported": "体检报告已出",
    "closed": "体检报告已出",
    "failed": "预约未成功",
}


def _message(container: ContainerDep, code: int, heading: str, line: str) -> HTMLResponse:
    return render_page(
        container, "message.html", code, heading=heading, lines=[line], tone="notice"
    )


async def _patient(
    token: str, container: ContainerDep, session: SessionDep
) -> Patient | HTMLResponse:
    return await linked_patient(
        token, container, session, expired="请联系体检中心重新获取预约链接。"
    )


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
    account = await session.get(ExamAccount, patient.id)
    bookings = (
        await session.exec(
            select(ExamBooking)
            .where(ExamBooking.patient_id == patient.id)
            .order_by(col(ExamBooking.created_at).desc())
            .limit(5)
        )
    ).all()
    first, last = booking_window(utcnow().astimezone(container.settings.tz).date())
    return render_page(
        container,
        "exam.html",
        code,
        token=token,
        account=account,
        bookings=bookings,
        in_progress=any(b.status in IN_PROGRESS for b in bookings),
        status_text=STATUS_TEXT,
        consent_version=CONSENT_VERSION,
        consent_text=CONSENT_TEXT,
        first_day=first,
        last_day=last,
        error=error,
        notice=notice,
        notice_tone=notice_tone,
    )


@router.get("/x/{token}", response_class=HTMLResponse)
async def exam_page(token: Key, container: ContainerDep, session: SessionDep) -> HTMLResponse:
    found = await _patient(token, container, session)
    return (
        found if isinstance(found, HTMLResponse) else await _page(token, container, session, found)
    )


@router.post("/x/{token}/bind", response_class=HTMLResponse)
async def bind(
    token: Key, request: Request, container: ContainerDep, session: SessionDep
) -> HTMLResponse:
    found = await _patient(token, container, session)
    if isinstance(found, HTMLResponse):
        return found
    posted = await read_fields(request, MAX_FORM_BYTES)
    if posted is None:
        return await _page(
            token, container, session, found, 400, error="提交的内容不完整，请重试。"
        )
    if posted.get("agree") != "yes":
        return await _page(
            token, container, session, found, 422, error="请先阅读并勾选同意数据使用授权协议。"
        )
    if posted.get("consent_version") != CONSENT_VERSION:
        return await _page(
            token, container, session, found, 409, error="授权协议已更新，请阅读新版本后再同意。"
        )
    try:
        bound = await bind_account(
            session,
            container.exams,
            container.his,
            found,
            consent_version=CONSENT_VERSION,
            actor_type="patient",
            actor_id=found.id,
        )
    except MissingIdentity:
        return await _page(
            token, container, session, found, 422,
            error="医院登记的信息不完整（性别、出生日期或身份证号），请到体检中心补充后再绑定。",
        )  # fmt: skip
    if bound.account_no is None:
        return await _page(
            token, container, session, found, bound.http_status, error=bound.reply.message
        )
    return await _page(
        token, container, session, found, bound.http_status, notice=bound.reply.message
    )


@router.post("/x/{token}/book", response_class=HTMLResponse)
async def book(
    token: Key, request: Request, container: ContainerDep, session: SessionDep
) -> HTMLResponse:
    found = await _patient(token, container, session)
    if isinstance(found, HTMLResponse):
        return found
    posted = await read_fields(request, MAX_FORM_BYTES)
    raw = (posted or {}).get("exam_date", "")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return await _page(token, container, session, found, 422, error="请选择体检日期。")
    try:
        booked = await request_exam(
            session,
            container.temporal,
            container.settings,
            found,
            exam_date=day,
            department_code=DEPARTMENT,
            actor_type="patient",
            actor_id=found.id,
        )
    except NotBound:
        return await _page(token, container, session, found, 409, error="请先绑定体检账号。")
    except ExamInProgress as exc:
        going = exc.booking.exam_date
        told = f"您已预约{going.month}月{going.day}日的体检，无需重复提交。"
        return await _page(token, container, session, found, 409, notice=told, notice_tone="notice")
    if isinstance(booked, Reply):
        return await _page(token, container, session, found, 422, error=booked.message)
    return await _page(
        token,
        container,
        session,
        found,
        status.HTTP_201_CREATED,
        notice=f"已提交{day.month}月{day.day}日的体检预约，医生审核项目后将为您预约，请留意短信通知。",
    )
