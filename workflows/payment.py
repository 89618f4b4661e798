"""One order's payment as a saga (PAY-1..PAY-4, PAY-6).

Forward: pre-settle with the HIS, which splits the amount into an insurance part and a self-pay
part (self-pay only, pure insurance or mixed); settle the insurance part with the insurance
centre; collect the self-pay part through the provider (wait for its notification, poll the
order in between, until the pay window closes); confirm the settlement with the HIS.

Any failure, refusal or the pay window closing compensates in reverse: the provider order is
closed, or refunded if the patient paid after all (a payment can land while it is being closed);
the insurance settlement is cancelled, found by order number if its answer was lost; the HIS
order is released. The saga then ends "failed" with the reason. Every external call carries an
idempotency key made of this workflow's id and the step, so a retry after a lost answer, or after
a worker died mid-call, finds the first result instead of charging twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.payment import (
        ACTIVITY_HIS_SETTLE,
        ACTIVITY_INSURANCE_CANCEL,
        ACTIVITY_INSURANCE_SETTLE,
        ACTIVITY_PRESETTLE,
        ACTIVITY_PROVIDER_CLOSE,
        ACTIVITY_PROVIDER_CREATE,
        ACTIVITY_PROVIDER_QUERY,
        ACTIVITY_PROVIDER_REFUND,
        ACTIVITY_RECORD_PAYMENT,
        ACTIVITY_RELEASE,
        PAYMENT_WORKFLOW,
        QUERY_PAYMENT,
        SIGNAL_PROVIDER_NOTICE,
        Change,
        Compensation,
        HisSettled,
        HisSettleRequest,
        InsuranceCancelled,
        InsuranceCancelRequest,
        InsuranceSettled,
        InsuranceSettleRequest,
        LedgerEntry,
        PaymentInput,
        PaymentState,
        PaymentStatus,
        PresettleRequest,
        ProviderCreated,
        ProviderCreateRequest,
        ProviderNotice,
        ProviderQueryRequest,
        ProviderRefunded,
        ProviderRefundRequest,
        ProviderTrade,
        RecordPayment,
        Released,
        ReleaseRequest,
        Split,
        out_trade_no,
    )
    from core.money import yuan
    from workflows.retries import DATABASE_RETRY, DATABASE_TIMEOUT
    from workflows.saga_steps import (
        SagaFailed,
        attempt,
        forward,
        notify,
        until_done,
    )

# Trade states after which the patient can no longer pay this order.
DEAD_TRADE = frozenset({"CLOSED", "PAYERROR", "REVOKED"})
PAID_TRADE = frozenset({"SUCCESS", "REFUND"})


@workflow.defn(name=PAYMENT_WORKFLOW)
class PaymentWorkflow:
    @workflow.init
    def __init__(self, input: PaymentInput) -> None:
        self._input = input
        self._status: PaymentStatus = "presettling"
        self._split: Split | None = None
        self._insurance: InsuranceSettled | None = None
        self._insurance_tried = False
        self._provider_tried = False
        self._trade_no = out_trade_no(input.order_id)
        self._pay_url: str | None = None
        self._paid: ProviderTrade | None = None
        self._receipt: str | None = None
        self._deadline: datetime | None = None
        self._failure: str | None = None
        self._compensations: list[Compensation] = []
        self._history: list[Change] = []
        self._ledger: list[LedgerEntry] = []
        self._seen_notices: set[str] = set()
        self._polls = 0
        self._accepted = 0
        self._ignored = 0
        self._seq = 0

    @workflow.run
    async def run(self, input: PaymentInput) -> PaymentState:  # noqa: ARG002 - held by __init__
        try:
            await self._forward()
        except SagaFailed as failure:
            self._failure = failure.reason
            await self._change("compensating", failure.reason)
            await self._compensate()
            await self._change("failed", failure.reason)
            await self._notify("failed", f"支付未完成：{failure.reason}", urgent=True)
        return self._state()

    # --- forward ---------------------------------------------------------------------------

    def _key(self, step: str) -> str:
        return f"{workflow.info().workflow_id}/{step}"

    async def _forward(self) -> None:
        order = self._input
        await self._change("presettling")
        split = await forward(
            ACTIVITY_PRESETTLE,
            PresettleRequest(
                his_order_no=order.his_order_no,
                patient_id=order.his_patient_id,
                use_insurance=order.use_insurance,
                key=self._key("presettle"),
            ),
            Split,
            policy=order.policy,
            what="医院预结算",
        )
        self._split = split
        if split.total_fen != order.amount_fen:
            raise SagaFailed(
                f"医院结算金额{yuan(split.total_fen)}与订单金额{yuan(order.amount_fen)}不一致"
            )
        if split.insurance_fen + split.self_pay_fen != split.total_fen:
            raise SagaFailed("医院预结算的医保与自费金额之和不等于总金额")
        if split.insurance_fen:
            await self._change("insurance_settling")
            self._insurance_tried = True
            self._insurance = await forward(
                ACTIVITY_INSURANCE_SETTLE,
                InsuranceSettleRequest(
                    his_order_no=order.his_order_no,
                    patient_id=order.his_patient_id,
                    presettle_id=split.presettle_id,
                    amount_fen=split.insurance_fen,
                    key=self._key("insurance"),
                ),
                InsuranceSettled,
                policy=order.policy,
                what="医保结算",
            )
            self._entry("insurance", "settle", self._insurance.settlement_id, split.insurance_fen)
        if split.self_pay_fen:
            await self._collect(split)
        await self._change("confirming")
        confirmed = await forward(
            ACTIVITY_HIS_SETTLE,
            HisSettleRequest(
                his_order_no=order.his_order_no,
                presettle_id=split.presettle_id,
                insurance_settlement_id=self._insurance.settlement_id if self._insurance else None,
                transaction_id=self._paid.transaction_id if self._paid else None,
                insurance_fen=split.insurance_fen,
                self_pay_fen=split.self_pay_fen,
                key=self._key("his-settle"),
            ),
            HisSettled,
            policy=order.policy,
            what="医院确认结算",
            # Money has moved by now: keep trying much longer before undoing it.
            give_up=timedelta(seconds=order.policy.confirm_give_up_seconds),
        )
        self._receipt = confirmed.receipt_no
        await self._change("settled")
        await self._notify("paid", "已缴费成功", urgent=True)

    async def _collect(self, split: Split) -> None:
        """The self-pay part: the provider order, then its notification or our polling, until
        the pay window closes (PAY-3)."""
        order = self._input
        deadline = workflow.now() + timedelta(seconds=order.policy.pay_window_seconds)
        self._deadline = deadline
        self._provider_tried = True
        created = await forward(
            ACTIVITY_PROVIDER_CREATE,
            ProviderCreateRequest(
                out_trade_no=self._trade_no,
                description=order.title,
                amount_fen=split.self_pay_fen,
                expires_at=deadline,
                notify_url=order.notify_url,
                attach=order.order_id,
            ),
            ProviderCreated,
            policy=order.policy,
            what="支付下单",
        )
        self._pay_url = created.pay_url
        await self._change("awaiting_payment")
        # Quiet hours would hold the link past the pay window: the patient is waiting for it.
        await self._notify("due", "待缴费，请在有效时间内完成支付", urgent=True)
        poll = timedelta(seconds=order.policy.poll_interval_seconds)
        while self._paid is None:
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                break
            try:
                await workflow.wait_condition(
                    lambda: self._paid is not None, timeout=min(poll, remaining)
                )
            except TimeoutError:
                await self._poll()
        if self._paid is None:
            # One last look: a payment made just before the window closed whose notification
            # is late or lost is still a payment.
            await self._poll()
        if self._paid is None:
            raise SagaFailed("超过支付时限未完成支付")
        await self._record()

    async def _poll(self) -> None:
        if self._paid is not None:
            return
        self._polls += 1
        trade = await attempt(
            ACTIVITY_PROVIDER_QUERY,
            ProviderQueryRequest(out_trade_no=self._trade_no),
            ProviderTrade,
            policy=self._input.policy,
        )
        if trade is None or self._paid is not None:
            return
        if trade.trade_state in PAID_TRADE:
            self._take_payment(trade)
        elif trade.trade_state in DEAD_TRADE:
            raise SagaFailed(f"支付平台订单状态为{trade.trade_state}")

    def _take_payment(self, trade: ProviderTrade) -> None:
        assert self._split is not None
        if trade.amount_fen != self._split.self_pay_fen:
            # Never settle on an amount we did not ask for; compensation refunds it.
            raise SagaFailed(f"支付平台金额{yuan(trade.amount_fen)}与应付金额不一致")
        self._paid = trade
        assert trade.transaction_id is not None
        self._entry("provider", "payment", trade.transaction_id, trade.amount_fen, trade)

    @workflow.signal(name=SIGNAL_PROVIDER_NOTICE)
    def provider_notice(self, notice: ProviderNotice) -> None:
        """A verified payment notification. Duplicates, notifications for another order and
        notifications arriving after the pay window are counted and ignored: the window's
        compensation finds any late payment itself (and refunds it)."""
        usable = (
            notice.notice_id not in self._seen_notices
            and self._paid is None
            and self._status == "awaiting_payment"
            and self._split is not None
            and notice.out_trade_no == self._trade_no
            and notice.trade_state == "SUCCESS"
            and notice.transaction_id is not None
            and notice.amount_fen == self._split.self_pay_fen
        )
        self._seen_notices.add(notice.notice_id)
        if not usable:
            self._ignored += 1
            return
        self._accepted += 1
        self._take_payment(
            ProviderTrade(
                out_trade_no=notice.out_trade_no,
                trade_state=notice.trade_state,
                transaction_id=notice.transaction_id,
                amount_fen=notice.amount_fen,
                success_time=notice.success_time,
            )
        )

    # --- compensation ----------------------------------------------------------------------

    async def _compensate(self) -> None:
        if self._provider_tried:
            await self._undo_provider()
        if self._insurance_tried:
            await self._undo_insurance()
        if self._split is not None:
            await self._undo_his(self._split)

    def _compensated(self, step: str, outcome: str) -> None:
        self._compensations.append(Compensation(step=step, outcome=outcome, at=workflow.now()))

    async def _undo_provider(self) -> None:
        policy = self._input.policy
        closed = await until_done(
            ACTIVITY_PROVIDER_CLOSE,
            ProviderQueryRequest(out_trade_no=self._trade_no),
            ProviderTrade,
            policy=policy,
        )
        if isinstance(closed, ApplicationError):
            self._compensated("provider", f"关闭支付订单被拒绝，需人工处理：{closed.message}")
            return
        if closed.trade_state not in PAID_TRADE:
            self._compensated(
                "provider",
                "支付订单已关闭"
                if closed.trade_state != "NOT_FOUND"
                else "支付平台无此订单，无需关闭",
            )
            return
        # Paid after all (late, or an amount we refused): the whole payment goes back.
        if self._paid is None and closed.transaction_id is not None:
            self._paid = closed
            self._entry("provider", "payment", closed.transaction_id, closed.amount_fen, closed)
        refunded = await until_done(
            ACTIVITY_PROVIDER_REFUND,
            ProviderRefundRequest(
                out_trade_no=self._trade_no,
                out_refund_no=f"{self._trade_no}C",
                refund_fen=closed.amount_fen,
                total_fen=closed.amount_fen,
                reason="缴费未完成，原路退回",
            ),
            ProviderRefunded,
            policy=policy,
        )
        if isinstance(refunded, ApplicationError):
            self._compensated("provider", f"自动退款被拒绝，需人工处理：{refunded.message}")
            return
        self._entry(
            "provider", "refund", refunded.refund_id, refunded.amount_fen, at=refunded.success_time
        )
        self._compensated("provider", f"已支付的{yuan(refunded.amount_fen)}已原路退回")

    async def _undo_insurance(self) -> None:
        cancelled = await until_done(
            ACTIVITY_INSURANCE_CANCEL,
            InsuranceCancelRequest(
                his_order_no=self._input.his_order_no,
                presettle_id=self._split.presettle_id if self._split else "",
                settlement_id=self._insurance.settlement_id if self._insurance else None,
                reason=self._failure or "缴费失败",
            ),
            InsuranceCancelled,
            policy=self._input.policy,
        )
        if isinstance(cancelled, ApplicationError):
            self._compensated("insurance", f"撤销医保结算被拒绝，需人工处理：{cancelled.message}")
            return
        for settlement in cancelled.cancelled:
            if self._insurance is None or settlement.settlement_id != self._insurance.settlement_id:
                # Settled at the centre although its answer never reached us.
                self._entry("insurance", "settle", settlement.settlement_id, settlement.amount_fen)
            self._entry("insurance", "cancel", settlement.settlement_id, settlement.amount_fen)
        self._compensated(
            "insurance", "医保结算已撤销" if cancelled.cancelled else "医保中心无此结算，无需撤销"
        )

    async def _undo_his(self, split: Split) -> None:
        released = await until_done(
            ACTIVITY_RELEASE,
            ReleaseRequest(
                his_order_no=self._input.his_order_no,
                presettle_id=split.presettle_id,
                reason=self._failure or "缴费失败",
            ),
            Released,
            policy=self._input.policy,
        )
        if isinstance(released, ApplicationError):
            self._compensated("his", f"医院释放订单被拒绝，需人工处理：{released.message}")
            return
        self._compensated("his", "医院订单已释放，可重新缴费")

    # --- bookkeeping -----------------------------------------------------------------------

    def _entry(
        self,
        party: str,
        kind: str,
        reference: str,
        amount_fen: int,
        trade: ProviderTrade | None = None,
        *,
        at: datetime | None = None,
    ) -> None:
        at = at or (trade.success_time if trade else None) or workflow.now()
        self._ledger.append(
            LedgerEntry(party=party, kind=kind, reference=reference, amount_fen=amount_fen, at=at)
        )

    async def _change(self, status: PaymentStatus, note: str = "") -> None:
        self._status = status
        self._history.append(Change(status=status, at=workflow.now(), note=note))
        await self._record()

    async def _record(self) -> None:
        self._seq += 1
        await workflow.execute_activity(
            ACTIVITY_RECORD_PAYMENT,
            RecordPayment(input=self._input, state=self._state(), seq=self._seq, at=workflow.now()),
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )

    async def _notify(self, kind: str, status_text: str, *, urgent: bool = False) -> None:
        order = self._input
        if not order.notify_patient:
            return
        await notify(
            key=f"{workflow.info().workflow_id}/notify/{kind}",
            patient_id=order.patient_id,
            hospital_code=order.hospital_code,
            department_code=order.department_code,
            order_id=order.order_id,
            title=order.title,
            amount=self._amount_text(),
            status_text=status_text,
            urgent=urgent,
        )

    def _amount_text(self) -> str:
        """What the patient pays themselves, as the pay page shows it: with insurance covering
        part of the bill, the self-pay part first (a patient once read the whole bill as due)."""
        split = self._split
        if split is None or split.insurance_fen == 0:
            return yuan(self._input.amount_fen)
        return f"自付{yuan(split.self_pay_fen)}，医保支付{yuan(split.insurance_fen)}"

    @workflow.query(name=QUERY_PAYMENT)
    def state(self) -> PaymentState:
        return self._state()

    def _state(self) -> PaymentState:
        return PaymentState(
            order_id=self._input.order_id,
            status=self._status,
            scenario=self._split.scenario if self._split else None,
            split=self._split,
            insurance_settlement_id=self._insurance.settlement_id if self._insurance else None,
            out_trade_no=self._trade_no if self._provider_tried else None,
            pay_url=self._pay_url,
            transaction_id=self._paid.transaction_id if self._paid else None,
            paid_at=self._paid.success_time if self._paid else None,
            receipt_no=self._receipt,
            deadline_at=self._deadline,
            failure_reason=self._failure,
            compensations=list(self._compensations),
            history=list(self._history),
            polls=self._polls,
            notices_accepted=self._accepted,
            notices_ignored=self._ignored,
            ledger=list(self._ledger),
        )
