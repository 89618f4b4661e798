"""The page a complaint's outcome message links to (SAT-3): what the patient raised, what was
done, and one to five stars (with a comment) for how it was handled. Works without script."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from api.deps import ContainerDep, SessionDep
from api.form_body import BodyTooLarge, MalformedBody, read_form
from api.routers.patient_pages import render_page
from complaints.lifecycle import CATEGORY_NAMES
from contracts.complaint import UPDATE_RATE, Rating
from core.links import LinkError, LinkExpired
from core.models import Complaint, utcnow
from core.validation import Key
from services.complaints import take_step
from services.updates import UpdateConflict

router = APIRouter(tags=["patient pages"], include_in_schema=False)

MAX_RATING_BYTES = 8 * 1024
STATUS_TEXT = {
    "open": "已收到，正在转交相关科室",
    "acknowledged": "相关科室正在处理",
    "resolved": "已处理完毕",
    "closed": "已结案",
}


def _message(container: ContainerDep, code: int, heading: str, line: str) -> HTMLResponse:
    return render_page(
        container, "message.html", code, heading=heading, lines=[line], tone="notice"
    )


async def _case(
    token: str, container: ContainerDep, session: SessionDep
) -> Complaint | HTMLResponse:
    try:
        claims = container.links.verify(token, utcnow())
    except LinkExpired:
        return _message(
            container, status.HTTP_410_GONE, "链接已过期", "评价时间已过，感谢您的反馈。"
        )
    except LinkError:
        return _message(
            container, status.HTTP_404_NOT_FOUND, "链接无效", "该链接不完整或已被修改。"
        )
    row = await session.get(Complaint, claims.task_id)
    if row is None:
        return _message(container, status.HTTP_404_NOT_FOUND, "链接无效", "未找到该记录。")
    return row


def _page(
    container: ContainerDep, row: Complaint, code: int = 200, error: str | None = None
) -> HTMLResponse:
    return render_page(
        container,
        "complaint.html",
        code,
        case=row,
        category=CATEGORY_NAMES.get(row.category, row.category),
        status_text=STATUS_TEXT.get(row.status, row.status),
        error=error,
    )


@router.get("/c/{token}", response_class=HTMLResponse)
async def complaint_page(token: Key, container: ContainerDep, session: SessionDep) -> HTMLResponse:
    found = await _case(token, container, session)
    return found if isinstance(found, HTMLResponse) else _page(container, found)


@router.post("/c/{token}", response_class=HTMLResponse)
async def rate(
    token: Key, request: Request, container: ContainerDep, session: SessionDep
) -> HTMLResponse:
    found = await _case(token, container, session)
    if isinstance(found, HTMLResponse):
        return found
    try:
        posted = await read_form(request, MAX_RATING_BYTES, max_files=0)
    except (BodyTooLarge, MalformedBody):
        return _page(container, found, status.HTTP_400_BAD_REQUEST, "提交的内容过长或不完整。")
    stars, comment = str(posted.get("stars") or ""), str(posted.get("comment") or "").strip()
    if stars not in ("1", "2", "3", "4", "5"):
        return _page(container, found, status.HTTP_422_UNPROCESSABLE_CONTENT, "请选择1到5颗星。")
    if len(comment) > 500:
        return _page(container, found, status.HTTP_422_UNPROCESSABLE_CONTENT, "意见请不超过500字。")
    try:
        rating = Rating(stars=int(stars), comment=comment or None)
    except ValidationError:
        return _page(
            container, found, status.HTTP_422_UNPROCESSABLE_CONTENT, "意见中有无法识别的字符。"
        )
    try:
        await take_step(session, container.temporal, found, UPDATE_RATE, rating)
    except UpdateConflict as exc:
        return _message(container, status.HTTP_409_CONFLICT, "无法评价", str(exc))
    return render_page(
        container,
        "message.html",
        status.HTTP_200_OK,
        heading="感谢您的评价",
        lines=["您的评价已记录，我们会持续改进服务。"],
        tone="ok",
    )
