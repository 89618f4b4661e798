"""One refund of a settled order as a saga (PAY-5, PAY-6).

The HIS first confirms the item can be refunded and splits the amount into an insurance part and
a self-pay part; the self-pay part goes back through the provider (answered synchronously, or
PROCESSING and then queried); the HIS is then told, and refunds the insurance part through the
insurance centre itself.

Nothing is compensated backwards once the provider has accepted: money returned to a patient is
never taken back. Instead the steps after it retry until done, under keys derived from this
workflow, so a worker killed right after the provider accepted repeats the same request and gets
the same refund back, and the HIS is told exactly once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.payment import (
        ACTIVITY_HIS_REFUND,
        ACTIVITY_HIS_REFUND_CHECK,
        ACTIVITY_PROVIDER_REFUND,
        ACTIVITY_PROVIDER_REFUND_QUERY,
        ACTIVITY_RECORD_REFUND,
        QUERY_REFUND,
        REFUND_WORKFLOW,
        Change,
        HisRefunded,
        HisRefundRequest,
        LedgerEntry,
        ProviderRefunded,
        ProviderRefundQuery,
        ProviderRefundRequest,
        RecordRefund,
        RefundCheckRequest,
        RefundCheckResult,
        RefundInput,
        RefundState,
        RefundStatus,
    )
    from core.money import yuan
    from workflows.retries import DATABASE_RETRY, DATABASE_TIMEOUT
    from workflows.saga_steps import (
        SagaFailed,
        forward,
        notify,
        until_done,
    )


@workflow.defn(name=REFUND_WORKFLOW)
class RefundWorkflow:
    @workflow.init
    def __init__(self, input: RefundInput) -> None:
        self._input = input
        self._status: RefundStatus = "checking"
        self._insurance_fen = 0
        self._self_pay_fen = 0
        self._provider_refund: ProviderRefunded | None = None
        self._his_refund_no: str | None = None
        self._reason: str | None = None
        self._history: list[Change] = []
        self._ledger: list[LedgerEntry] = []
        self._seq = 0

    @workflow.run
    async def run(self, input: RefundInput) -> RefundState:
        await self._change("checking")
        try:
            check = await forward(
                ACTIVITY_HIS_REFUND_CHECK,
                RefundCheckRequest(his_order_no=input.his_order_no, amount_fen=input.amount_fen),
                RefundCheckResult,
                policy=input.policy,
                what="医院退费审核",
            )
        except SagaFailed as failure:
            return await self._end("failed", failure.reason)
        if not check.refundable:
            return await self._end("rejected", check.reason or "医院不同意退费")
        if check.insurance_fen + check.self_pay_fen != input.amount_fen:
            return await self._end("rejected", "医院拆分的医保与自费退款之和与申请金额不一致")
        if check.self_pay_fen and not input.out_trade_no:
            return await self._end("rejected", "订单没有自费支付记录，无法退回自费部分")
        self._insurance_fen, self._self_pay_fen = check.insurance_fen, check.self_pay_fen

        if self._self_pay_fen:
            await self._change("refunding")
            problem = await self._refund_self_pay()
            if problem is not None:
                return await self._end("failed", problem)

        await self._change("informing_his")
        told = await until_done(
            ACTIVITY_HIS_REFUND,
            HisRefundRequest(
                his_order_no=input.his_order_no,
                refund_id=input.refund_id,
                amount_fen=input.amount_fen,
                insurance_fen=self._insurance_fen,
                self_pay_fen=self._self_pay_fen,
                provider_refund_id=self._provider_refund.refund_id
                if self._provider_refund
                else None,
                key=f"{workflow.info().workflow_id}/his-refund",
            ),
            HisRefunded,
            policy=input.policy,
        )
        if isinstance(told, ApplicationError):
            # The self-pay part is back with the patient already; people must settle the rest.
            return await self._end("failed", f"医院退费登记被拒绝，需人工处理：{told.message}")
        self._his_refund_no = told.his_refund_no
        if self._insurance_fen:
            self._entry("insurance", told.his_refund_no, self._insurance_fen, None)
        await self._change("succeeded")
        await self._notify(f"已退费{yuan(input.amount_fen)}，将原路退回")
        return self._state()

    async def _refund_self_pay(self) -> str | None:
        """The provider part; the failure reason, or None when the money is on its way back."""
        input = self._input
        assert input.out_trade_no is not None
        out_refund_no = input.refund_id.replace("-", "")
        result = await until_done(
            ACTIVITY_PROVIDER_REFUND,
            ProviderRefundRequest(
                out_trade_no=input.out_trade_no,
                out_refund_no=out_refund_no,
                refund_fen=self._self_pay_fen,
                total_fen=input.self_pay_total_fen,
                reason=input.reason,
            ),
            ProviderRefunded,
            policy=input.policy,
        )
        if isinstance(result, ApplicationError):
            return f"支付平台拒绝退款：{result.message}"
        while result.status == "PROCESSING":
            await workflow.sleep(timedelta(seconds=input.policy.poll_interval_seconds))
            queried = await until_done(
                ACTIVITY_PROVIDER_REFUND_QUERY,
                ProviderRefundQuery(out_refund_no=out_refund_no),
                ProviderRefunded,
                policy=input.policy,
            )
            if isinstance(queried, ApplicationError):
                return f"查询退款结果被拒绝，需人工处理：{queried.message}"
            result = queried
        self._provider_refund = result
        if result.status != "SUCCESS":
            return f"支付平台退款状态为{result.status}，需人工处理"
        self._entry("provider", result.refund_id, result.amount_fen, result.success_time)
        return None

    def _entry(self, party: str, reference: str, amount_fen: int, at: datetime | None) -> None:
        self._ledger.append(
            LedgerEntry(
                party=party,
                kind="refund",
                reference=reference,
                amount_fen=amount_fen,
                at=at or workflow.now(),
                refund_id=self._input.refund_id,
            )
        )

    async def _end(self, status: RefundStatus, reason: str) -> RefundState:
        self._reason = reason
        await self._change(status, reason)
        if status == "rejected":
            await self._notify(f"退费申请未通过：{reason}")
        return self._state()

    async def _change(self, status: RefundStatus, note: str = "") -> None:
        self._status = status
        self._history.append(Change(status=status, at=workflow.now(), note=note))
        self._seq += 1
        await workflow.execute_activity(
            ACTIVITY_RECORD_REFUND,
            RecordRefund(input=self._input, state=self._state(), seq=self._seq, at=workflow.now()),
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )

    async def _notify(self, status_text: str) -> None:
        input = self._input
        if not input.notify_patient:
            return
        await notify(
            key=f"{workflow.info().workflow_id}/notify/{self._status}",
            patient_id=input.patient_id,
            hospital_code=input.hospital_code,
            department_code=input.department_code,
            order_id=input.order_id,
            title=input.title,
            amount=yuan(input.amount_fen),
            status_text=status_text,
        )

    @workflow.query(name=QUERY_REFUND)
    def state(self) -> RefundState:
        return self._state()

    def _state(self) -> RefundState:
        return RefundState(
            refund_id=self._input.refund_id,
            order_id=self._input.order_id,
            status=self._status,
            amount_fen=self._input.amount_fen,
            insurance_fen=self._insurance_fen,
            self_pay_fen=self._self_pay_fen,
            provider_refund_id=self._provider_refund.refund_id if self._provider_refund else None,
            his_refund_no=self._his_refund_no,
            reason=self._reason,
            history=list(self._history),
            ledger=list(self._ledger),
        )
