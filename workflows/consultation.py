"""An online consultation (在线问诊) paid in advance and refunded automatically when no doctor
accepts it in time (PAY-7).

The fee is paid through the payment saga as a child workflow; the consultation then waits for a
doctor's acceptance (an update, refused once the consultation is no longer waiting) until the
hospital's deadline, after which it is cancelled and the whole fee refunded through the refund
saga, also a child, so both appear under this workflow in the Temporal UI.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.payment import (
        ACTIVITY_OPEN_REFUND,
        ACTIVITY_RECORD_CONSULTATION,
        CONSULTATION_REFUSALS,
        CONSULTATION_WORKFLOW,
        PAYMENT_WORKFLOW,
        QUERY_CONSULTATION,
        REFUND_WORKFLOW,
        UPDATE_ACCEPT,
        Acceptance,
        ConsultationInput,
        ConsultationState,
        ConsultationStatus,
        OpenedRefund,
        OpenRefund,
        PaymentState,
        RecordConsultation,
        RefundState,
        payment_workflow_id,
        refund_workflow_id,
    )
    from workflows.retries import DATABASE_RETRY, DATABASE_TIMEOUT
    from workflows.updates import UpdateRejected

AUTO_REFUND_REASON = "医生未在规定时间内接诊，问诊已取消并自动退费"


@workflow.defn(name=CONSULTATION_WORKFLOW)
class ConsultationWorkflow:
    @workflow.init
    def __init__(self, input: ConsultationInput) -> None:
        self._input = input
        self._status: ConsultationStatus = "paying"
        self._deadline: datetime | None = None
        self._acceptance: Acceptance | None = None
        self._refund_id: str | None = None
        self._note: str | None = None
        self._seq = 0

    @workflow.run
    async def run(self, input: ConsultationInput) -> ConsultationState:
        await self._change("paying")
        paid = await workflow.execute_child_workflow(
            PAYMENT_WORKFLOW,
            input.payment,
            id=payment_workflow_id(input.payment.order_id),
            search_attributes=workflow.info().typed_search_attributes,
            result_type=PaymentState,
        )
        if paid.status != "settled":
            await self._change("payment_failed", paid.failure_reason)
            return self._state()

        self._deadline = workflow.now() + timedelta(seconds=input.accept_within_seconds)
        await self._change("waiting_doctor")
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._acceptance is not None,
                timeout=timedelta(seconds=input.accept_within_seconds),
            )
        if self._acceptance is not None:
            await self._change("accepted", f"{self._acceptance.doctor_name}已接诊")
            return self._state()

        await self._change("refunding", AUTO_REFUND_REASON)
        self._refund_id = str(workflow.uuid4())
        opened = await workflow.execute_activity(
            ACTIVITY_OPEN_REFUND,
            OpenRefund(
                refund_id=self._refund_id,
                order_id=input.payment.order_id,
                amount_fen=None,
                reason=AUTO_REFUND_REASON,
                requested_by="system:consultation-timeout",
            ),
            result_type=OpenedRefund,
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )
        if opened.input is None:
            await self._change("refunded", "订单已无可退金额")
            return self._state()
        refunded = await workflow.execute_child_workflow(
            REFUND_WORKFLOW,
            opened.input,
            id=refund_workflow_id(self._refund_id),
            search_attributes=workflow.info().typed_search_attributes,
            result_type=RefundState,
        )
        if refunded.status == "succeeded":
            await self._change("refunded", AUTO_REFUND_REASON)
        else:
            await self._change("refund_failed", refunded.reason)
        return self._state()

    @workflow.update(name=UPDATE_ACCEPT)
    async def accept(self, acceptance: Acceptance) -> ConsultationState:
        self._check_accept()
        self._acceptance = acceptance
        await workflow.wait_condition(lambda: self._status != "waiting_doctor")
        return self._state()

    @accept.validator
    def _validate_accept(self, acceptance: Acceptance) -> None:  # noqa: ARG002 - fixed signature
        self._check_accept()

    def _check_accept(self) -> None:
        if self._status != "waiting_doctor" or self._acceptance is not None:
            raise UpdateRejected(
                CONSULTATION_REFUSALS.get(self._status, f"问诊当前状态为{self._status}，不能接诊")
            )

    async def _change(self, status: ConsultationStatus, note: str | None = None) -> None:
        self._status = status
        self._note = note
        self._seq += 1
        await workflow.execute_activity(
            ACTIVITY_RECORD_CONSULTATION,
            RecordConsultation(state=self._state(), seq=self._seq, at=workflow.now()),
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )

    @workflow.query(name=QUERY_CONSULTATION)
    def state(self) -> ConsultationState:
        return self._state()

    def _state(self) -> ConsultationState:
        acceptance = self._acceptance
        return ConsultationState(
            consultation_id=self._input.consultation_id,
            order_id=self._input.payment.order_id,
            status=self._status,
            accept_deadline_at=self._deadline,
            accepted_by=acceptance.doctor_id if acceptance else None,
            accepted_at=acceptance.at if acceptance else None,
            refund_id=self._refund_id,
            note=self._note,
        )
