"""The daily reconciliation (PAY-8): the provider's trade bill against the movements our sagas
recorded in the ledger, with the differences stored for people to resolve."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.payment import ACTIVITY_RECONCILE, ReconcileRequest, ReconcileSummary
from core.db import SessionFactory, transaction
from core.logs import get_logger
from core.models import Discrepancy, LedgerEntryRow, PaymentOrder, Reconciliation, utcnow
from integrations.wechatpay import BillLine, ProviderRefused, WeChatPayClient

log = get_logger(__name__)


def _key(line: BillLine) -> tuple[str, str]:
    return line.kind, (line.refund_id or "") if line.kind == "refund" else line.transaction_id


class ReconciliationActivities:
    def __init__(self, sessions: SessionFactory, provider: WeChatPayClient) -> None:
        self._sessions = sessions
        self._provider = provider

    @activity.defn(name=ACTIVITY_RECONCILE)
    async def reconcile(self, request: ReconcileRequest) -> ReconcileSummary:
        try:
            lines = await self._provider.trade_bill(request.bill_date)
        except ProviderRefused as exc:
            # Typically "bill not generated yet": worth asking again later.
            raise ApplicationError(str(exc), type="StatementNotReady") from exc
        zone = ZoneInfo(request.timezone)
        start = datetime.combine(request.bill_date, time(0), zone).astimezone(UTC)
        end = start + timedelta(days=1)
        provider = {_key(line): line for line in lines}
        async with transaction(self._sessions) as session:
            found = await session.exec(
                select(LedgerEntryRow).where(
                    LedgerEntryRow.party == "provider",
                    col(LedgerEntryRow.kind).in_(["payment", "refund"]),
                    col(LedgerEntryRow.at) >= start,
                    col(LedgerEntryRow.at) < end,
                )
            )
            ours = {(e.kind, e.reference): e for e in found.all()}
            # Movements the provider dated this day that we dated a neighbouring one.
            missing = [k for k in provider if k not in ours]
            if missing:
                elsewhere = await session.exec(
                    select(LedgerEntryRow).where(
                        LedgerEntryRow.party == "provider",
                        col(LedgerEntryRow.reference).in_([ref for _, ref in missing]),
                    )
                )
                for other in elsewhere.all():
                    ours.setdefault((other.kind, other.reference), other)
            await session.exec(
                delete(Discrepancy).where(col(Discrepancy.bill_date) == request.bill_date)
            )
            run = await session.get(Reconciliation, request.bill_date)
            discrepancies: list[Discrepancy] = []
            matched = 0
            for key, line in provider.items():
                entry = ours.get(key)
                if entry is None:
                    order_id = await self._order_for(session, line.out_trade_no)
                    discrepancies.append(
                        Discrepancy(
                            bill_date=request.bill_date,
                            kind="missing_in_platform",
                            movement=line.kind,
                            reference=key[1],
                            out_trade_no=line.out_trade_no,
                            order_id=order_id,
                            provider_fen=line.amount_fen,
                        )
                    )
                elif entry.amount_fen != line.amount_fen:
                    discrepancies.append(
                        Discrepancy(
                            bill_date=request.bill_date,
                            kind="amount_mismatch",
                            movement=line.kind,
                            reference=key[1],
                            out_trade_no=line.out_trade_no,
                            order_id=entry.order_id,
                            provider_fen=line.amount_fen,
                            platform_fen=entry.amount_fen,
                        )
                    )
                else:
                    matched += 1
            for key, entry in ours.items():
                if key not in provider and start <= entry.at < end:
                    discrepancies.append(
                        Discrepancy(
                            bill_date=request.bill_date,
                            kind="missing_at_provider",
                            movement=entry.kind,
                            reference=entry.reference,
                            order_id=entry.order_id,
                            platform_fen=entry.amount_fen,
                        )
                    )
            in_day = [e for e in ours.values() if start <= e.at < end]
            summary = ReconcileSummary(
                bill_date=request.bill_date,
                provider_lines=len(lines),
                platform_entries=len(in_day),
                matched=matched,
                discrepancies=len(discrepancies),
                provider_net_fen=sum(
                    line.amount_fen if line.kind == "payment" else -line.amount_fen
                    for line in lines
                ),
                platform_net_fen=sum(
                    e.amount_fen if e.kind == "payment" else -e.amount_fen for e in in_day
                ),
            )
            if run is None:
                run = Reconciliation(bill_date=request.bill_date, **_figures(summary))
                session.add(run)
            else:
                for name, value in _figures(summary).items():
                    setattr(run, name, value)
                run.ran_at = utcnow()
            await session.flush()
            session.add_all(discrepancies)
        log.info(
            "reconciled",
            bill_date=str(request.bill_date),
            lines=len(lines),
            discrepancies=len(discrepancies),
        )
        return summary

    @staticmethod
    async def _order_for(session: AsyncSession, out_trade_no: str) -> str | None:
        found = await session.exec(
            select(PaymentOrder.id).where(PaymentOrder.out_trade_no == out_trade_no)
        )
        return found.first()


def _figures(summary: ReconcileSummary) -> dict[str, Any]:
    return summary.model_dump(exclude={"bill_date"})
