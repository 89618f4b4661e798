"""Finance (PAY-7, PAY-8): the money the sagas could not put right by themselves (failed and
stuck refunds, payments stuck in a retrying step, reconciliation days with open discrepancies),
and the reconciliation of each day's provider bill with our ledger, with its findings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, Response

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission
from api.workbench.auth import PageError, Viewer, page_requires
from api.workbench.exports import download, exported, local_time
from api.workbench.render import render
from core.models import Discrepancy, Reconciliation, utcnow
from services import payment_attention, reconciliation
from services.spreadsheets import Column, workbook

router = APIRouter(include_in_schema=False)
FinancePage = Annotated[Viewer, Depends(page_requires(Permission.PAYMENTS_RECONCILE))]
STUCK_AFTER = timedelta(minutes=30)
DAYS_SHOWN = 31

ATTENTION_KINDS = {
    "refund_failed": "退款失败",
    "order_stuck": "缴费卡在重试步骤",
    "refund_stuck": "退款卡在重试步骤",
    "reconciliation": "对账差异未处理",
}
STATUS_NAMES = {
    "failed": "失败",
    "confirming": "确认中（重试）",
    "compensating": "冲正中（重试）",
    "refunding": "退款中（重试）",
    "informing_his": "通知医院中（重试）",
}
DISCREPANCY_KINDS = {
    "missing_in_platform": "平台无此笔",
    "missing_at_provider": "渠道无此笔",
    "amount_mismatch": "金额不符",
}


@router.get("/w/finance", response_class=HTMLResponse)
async def finance(
    request: Request, container: ContainerDep, session: SessionDep, seen: FinancePage
) -> HTMLResponse:
    items = await payment_attention.attention(session, seen.staff, stuck_after=STUCK_AFTER)
    days = await reconciliation.runs(session, DAYS_SHOWN)
    return render(
        container,
        request,
        "finance.html",
        seen,
        items=items,
        kinds=ATTENTION_KINDS,
        statuses=STATUS_NAMES,
        days=days,
    )


ATTENTION_COLUMNS = (
    Column("类别", 16),
    Column("说明", 48),
    Column("金额（元）", 12, "0.00"),
    Column("状态", 16),
    Column("自", 18),
    Column("订单号", 38),
)


@router.get("/w/finance/attention.xlsx")
async def attention_workbook(
    container: ContainerDep, session: SessionDep, seen: FinancePage
) -> Response:
    """What needs a person, as Excel, for the day's hand-over with the cashier's office."""
    items = await payment_attention.attention(session, seen.staff, stuck_after=STUCK_AFTER)
    stamp = await exported(session, seen, "payment_attention", "", container.settings.tz)
    tz = container.settings.tz

    def since(item: payment_attention.AttentionItem) -> str:
        if isinstance(item.since, datetime):
            return local_time(item.since, tz)
        return item.since.isoformat()

    data = workbook(
        "需要处理的缴费与退款",
        [f"共 {len(items)} 项", stamp],
        ATTENTION_COLUMNS,
        [
            [
                ATTENTION_KINDS.get(item.kind, item.kind),
                item.note,
                item.amount_fen / 100 if item.amount_fen is not None else None,
                STATUS_NAMES.get(item.status or "", item.status or ""),
                since(item),
                item.order_id or "",
            ]
            for item in items
        ],
    )
    return download(data, f"payment-attention-{utcnow().astimezone(tz).date()}.xlsx")


async def _day(
    session: SessionDep, bill_date: str
) -> tuple[date, Reconciliation, Sequence[Discrepancy]]:
    try:
        day = date.fromisoformat(bill_date)
    except ValueError:
        raise PageError(status.HTTP_404_NOT_FOUND, "日期格式不正确") from None
    run, found = await reconciliation.findings(session, day)
    if run is None:
        raise PageError(status.HTTP_404_NOT_FOUND, f"{day.isoformat()} 尚未对账")
    return day, run, found


@router.get("/w/finance/reconciliations/{bill_date}", response_class=HTMLResponse)
async def reconciliation_day(
    bill_date: str,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: FinancePage,
) -> HTMLResponse:
    _, run, found = await _day(session, bill_date)
    return render(
        container,
        request,
        "reconciliation.html",
        seen,
        run=run,
        findings=found,
        kinds=DISCREPANCY_KINDS,
    )


DISCREPANCY_COLUMNS = (
    Column("差异", 14),
    Column("类型", 8),
    Column("流水号", 34),
    Column("商户订单号", 34),
    Column("渠道（元）", 12, "0.00"),
    Column("平台（元）", 12, "0.00"),
    Column("状态", 8),
)


@router.get("/w/finance/reconciliations/{bill_date}/discrepancies.xlsx")
async def discrepancies_workbook(
    bill_date: str, container: ContainerDep, session: SessionDep, seen: FinancePage
) -> Response:
    """The day's findings as Excel, to work through with the payment provider."""
    day, run, found = await _day(session, bill_date)
    stamp = await exported(
        session, seen, "reconciliation", f"bill_date={day.isoformat()}", container.settings.tz
    )

    def yuan(fen: int | None) -> float | None:
        return fen / 100 if fen is not None else None

    data = workbook(
        f"{day.isoformat()} 对账差异",
        [
            f"渠道 {run.provider_lines} 笔，平台 {run.platform_entries} 笔，相符 {run.matched} 笔，"
            f"差异 {run.discrepancies} 笔",
            stamp,
        ],
        DISCREPANCY_COLUMNS,
        [
            [
                DISCREPANCY_KINDS.get(f.kind, f.kind),
                "缴费" if f.movement == "payment" else "退款",
                f.reference,
                f.out_trade_no or "",
                yuan(f.provider_fen),
                yuan(f.platform_fen),
                "已处理" if f.resolved else "未处理",
            ]
            for f in found
        ],
    )
    return download(data, f"reconciliation-{day.isoformat()}.xlsx")
