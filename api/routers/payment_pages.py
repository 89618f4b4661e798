"""The page a payment message links to (PAY-6): the order, its insurance and self-pay parts,
where it stands, and while it waits for the patient a button to the provider's payment page."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import HTMLResponse

from api.deps import ContainerDep, SessionDep
from api.routers.patient_pages import PAGE_HEADERS
from core.links import LinkError, LinkExpired
from core.models import PaymentOrder, utcnow
from core.money import yuan
from core.validation import Key

router = APIRouter(tags=["patient pages"], include_in_schema=False)

STATUS_TEXT = {
    "created": "待缴费",
    "paying": "缴费处理中",
    "settled": "已缴费",
    "failed": "未完成缴费，订单已关闭",
    "partially_refunded": "已部分退费",
    "refunded": "已全额退费",
}
SAGA_TEXT = {
    "awaiting_payment": "待支付",
    "presettling": "正在结算",
    "insurance_settling": "正在进行医保结算",
    "confirming": "支付成功，正在确认",
    "compensating": "订单关闭中",
}


def _render(
    container: ContainerDep, template: str, code: int = 200, **context: object
) -> HTMLResponse:
    settings = container.settings
    html = container.pages.get_template(template).render(
        hospital_name=settings.hospital_name,
        hospital_phone=settings.hospital_phone,
        yuan=yuan,
        **context,
    )
    return HTMLResponse(html, status_code=code, headers=PAGE_HEADERS)


def _message(container: ContainerDep, code: int, heading: str, line: str) -> HTMLResponse:
    return _render(container, "message.html", code, heading=heading, lines=[line], tone="notice")


@router.get("/pay/{token}", response_class=HTMLResponse)
async def payment_page(token: Key, container: ContainerDep, session: SessionDep) -> HTMLResponse:
    try:
        claims = container.links.verify(token, utcnow())
    except LinkExpired:
        return _message(
            container, status.HTTP_410_GONE, "链接已过期", "请在医院公众号中查看缴费记录。"
        )
    except LinkError:
        return _message(
            container, status.HTTP_404_NOT_FOUND, "链接无效", "该链接不完整或已被修改。"
        )
    order = await session.get(PaymentOrder, claims.task_id)
    if order is None:
        return _message(container, status.HTTP_404_NOT_FOUND, "链接无效", "未找到该缴费订单。")
    waiting = order.status == "paying" and order.saga_status == "awaiting_payment"
    text = SAGA_TEXT.get(order.saga_status or "", "") if order.status == "paying" else ""
    tz = container.settings.tz
    return _render(
        container,
        "payment.html",
        order=order,
        status_text=text or STATUS_TEXT.get(order.status, order.status),
        pay_url=order.pay_url if waiting else None,
        deadline=order.pay_deadline_at.astimezone(tz).strftime("%H:%M")
        if order.pay_deadline_at
        else "",
    )
