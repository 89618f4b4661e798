"""One herbal prescription from submission to delivery (RX-1..RX-8).

Review rounds: base rules first (an activity, so a rule-book change never alters a replay), then
a pharmacist's decision through an update with a validator, until the hospital's deadline. With
no decision by then the system concludes: approved ("timeout") when the rules found nothing;
otherwise, by default, returned to the doctor with the findings, because an unsafe combination
must never pass silently. A returned prescription comes back revised (a new round with a new
deadline) or is cancelled.

After approval: payment reported by the HIS, dispatch to a service enterprise, the enterprise's
statuses in their one valid order, and refunds in the states the hospital allows. Every change is
projected into the database and called back to the HIS, in order, by a background sender that
retries with backoff; a slow or failing HIS never holds up the review.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from contracts.messages import (
        DELIVERY_WORKFLOW,
        MessageRequest,
        delivery_workflow_id,
    )
    from contracts.prescription import (
        ACTIVITY_CANCEL_ORDER,
        ACTIVITY_CHECK,
        ACTIVITY_DISPATCH,
        ACTIVITY_HIS_CALLBACK,
        ACTIVITY_RECORD,
        FINISHED_STATUSES,
        PRESCRIPTION_WORKFLOW,
        QUERY_STATE,
        SYSTEM_REVIEWER,
        UPDATE_CANCEL,
        UPDATE_DECIDE,
        UPDATE_ENTERPRISE_STATUS,
        UPDATE_PAYMENT,
        UPDATE_REFUND,
        UPDATE_REVISE,
        Cancellation,
        CancelOrder,
        CheckRequest,
        CheckResult,
        Conclusion,
        Decision,
        DispatchOrder,
        DispatchResult,
        EnterpriseUpdate,
        HisCallback,
        Payment,
        PrescriptionContent,
        PrescriptionInput,
        PrescriptionState,
        RecordRequest,
        Refund,
        ReviewRound,
        Revision,
        StatusChange,
        base_task_queue,
    )
    from core.hospitals import RxStatus
    from prescriptions.dispatch import choose_enterprise, enterprise_sequence
    from prescriptions.lifecycle import (
        TransitionRefused,
        check_cancellation,
        check_decision,
        check_enterprise_status,
        check_payment,
        check_refund,
        check_revision,
        conclusion_at_deadline,
    )
    from workflows.local_steps import database_activity, local_step
    from workflows.retries import (
        ENTERPRISE_GIVE_UP,
        ENTERPRISE_RETRY,
        ENTERPRISE_TIMEOUT,
        HIS_CALLBACK_GIVE_UP,
        HIS_CALLBACK_RETRY,
        HIS_CALLBACK_TIMEOUT,
    )
    from workflows.updates import UpdateRejected, refused_as_rejected, wait_for

CALLBACK_WITH_RECORD = "callback-with-record"
DECISION_AFTER_RECORD = "decision-answered-after-record"

PATIENT_NOTICES: dict[str, str] = {
    "approved": "已审核通过，请按医院提示完成缴费",
    "shipped": "已发货，请注意查收",
    "delivered": "已送达，请按医嘱服用",
    "ready_for_pickup": "已备好，请到取药点取药",
    "refunded": "已退费",
}


@workflow.defn(name=PRESCRIPTION_WORKFLOW)
class PrescriptionWorkflow:
    @workflow.init
    def __init__(self, input: PrescriptionInput) -> None:
        self._input = input
        self._status: RxStatus = "reviewing"
        self._rounds: list[ReviewRound] = []
        self._history: list[StatusChange] = []
        self._decision: Decision | None = None
        self._revision: Revision | None = None
        self._cancellation: Cancellation | None = None
        self._payment: Payment | None = None
        self._refund: Refund | None = None
        self._enterprise: str | None = None
        self._tracking_no: str | None = None
        self._enterprise_updates: list[EnterpriseUpdate] = []
        self._enterprise_status: str | None = None
        self._seq = 0
        # The last round whose conclusion the database has (a decision is answered after it).
        self._recorded_round = 0
        self._callbacks: list[HisCallback] = []
        self._closing = False

    # --- the process ---------------------------------------------------------------------

    @workflow.run
    async def run(self, input: PrescriptionInput) -> PrescriptionState:  # noqa: ARG002 - held by __init__
        sender = asyncio.create_task(self._send_callbacks())
        if await self._review_until_approved():
            await self._fulfil()
        self._closing = True
        await sender
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state()

    async def _review_until_approved(self) -> bool:
        content = self._input.content
        actor = "his"
        while True:
            review = await self._start_round(content, actor)
            conclusion = await self._conclude(review)
            if conclusion is None:  # cancelled while under review
                await self._finish_cancelled()
                return False
            self._rounds[-1] = review.model_copy(update={"conclusion": conclusion})
            if conclusion.outcome == "approved":
                await self._change("approved", conclusion.reviewer, conclusion.reason, "concluded")
                await self._notify("approved")
                return True
            await self._change("returned", conclusion.reviewer, conclusion.reason, "concluded")
            window = timedelta(hours=self._input.config.review.revision_window_hours)
            if not await wait_for(lambda: self._revision or self._cancellation, window):
                self._cancellation = Cancellation(reason="医生未在时限内修改处方", by="system")
            if self._cancellation is not None:
                await self._finish_cancelled()
                return False
            assert self._revision is not None
            content, actor = self._revision.content, f"doctor:{self._revision.doctor_id}"
            self._revision = None

    async def _start_round(self, content: PrescriptionContent, actor: str) -> ReviewRound:
        started = workflow.now()
        checked: CheckResult = await local_step(
            ACTIVITY_CHECK, CheckRequest(items=content.items), result_type=CheckResult
        )
        deadline = started + timedelta(seconds=self._input.config.review.deadline_seconds)
        review = ReviewRound(
            number=len(self._rounds) + 1,
            started_at=started,
            deadline_at=deadline,
            content=content,
            findings=checked.findings,
        )
        self._rounds.append(review)
        self._decision = None
        await self._change("reviewing", actor, f"第{review.number}轮审方", "round_started")
        return review

    async def _conclude(self, review: ReviewRound) -> Conclusion | None:
        """The round's conclusion: the pharmacist's, or the system's at the deadline."""
        remaining = review.deadline_at - workflow.now()
        await wait_for(lambda: self._decision or self._cancellation, remaining)
        if self._cancellation is not None:
            return None
        if self._decision is None:
            concluded = conclusion_at_deadline(
                [f.message for f in review.findings],
                self._input.config.review.on_timeout_with_findings,
            )
            if concluded is not None:
                outcome, reason = concluded
                return Conclusion(
                    round=review.number,
                    outcome=outcome,
                    reviewer=SYSTEM_REVIEWER,
                    reason=reason,
                    at=review.deadline_at,
                    timed_out=True,
                )
            # The hospital chose to leave unsafe prescriptions for a pharmacist, however late.
            await self._record("review_overdue", SYSTEM_REVIEWER, "已超过审方时限，等待药师审核")
            await workflow.wait_condition(lambda: bool(self._decision or self._cancellation))
            if self._cancellation is not None:
                return None
        decision = self._decision
        assert decision is not None
        return Conclusion(
            round=review.number,
            outcome="approved" if decision.outcome == "approve" else "rejected",
            reviewer=decision.pharmacist_id,
            reviewer_name=decision.pharmacist_name,
            reason=decision.reason or "审核通过",
            at=workflow.now(),
        )

    async def _fulfil(self) -> None:
        config = self._input.config
        window = timedelta(hours=config.review.payment_window_hours)
        if not await wait_for(lambda: self._payment or self._cancellation, window):
            self._cancellation = Cancellation(reason="未在时限内缴费", by="system")
        if self._cancellation is not None:
            await self._finish_cancelled()
            return
        assert self._payment is not None
        await self._change("paid", "his", f"缴费单号 {self._payment.payment_id}", "paid")

        delivery, content = self._input.delivery, self._rounds[-1].content
        self._enterprise = choose_enterprise(
            config.dispatch_rules, delivery.mode, content.decoction
        )
        if self._enterprise is not None and self._refund is None:
            try:
                await workflow.execute_activity(
                    ACTIVITY_DISPATCH,
                    DispatchOrder(
                        enterprise=self._enterprise,
                        prescription_id=self._input.prescription_id,
                        prescription_no=self._input.prescription_no,
                        hospital_code=self._input.hospital_code,
                        content=content,
                        delivery=delivery,
                        idempotency_key=f"{workflow.info().workflow_id}/dispatch",
                    ),
                    result_type=DispatchResult,
                    start_to_close_timeout=ENTERPRISE_TIMEOUT,
                    schedule_to_close_timeout=ENTERPRISE_GIVE_UP,
                    retry_policy=ENTERPRISE_RETRY,
                )
            except ActivityError as err:
                await self._record("dispatch_failed", SYSTEM_REVIEWER, str(err.cause or err))
                self._enterprise = None
        if self._enterprise is None and self._refund is None:
            # Nobody can fill it: it waits, paid, for staff to refund it.
            await self._record("dispatch_failed", SYSTEM_REVIEWER, "没有可承接的配送企业")
            await workflow.wait_condition(lambda: self._refund is not None)
        elif self._refund is None:
            await self._change("dispatched", SYSTEM_REVIEWER, self._enterprise, "dispatched")

        sequence = enterprise_sequence(delivery.mode, content.decoction)
        while True:
            await workflow.wait_condition(
                lambda: bool(self._refund is not None or self._enterprise_updates)
            )
            if self._refund is not None:
                await self._finish_refunded()
                return
            update = self._enterprise_updates.pop(0)
            self._enterprise_status = update.status
            self._tracking_no = update.tracking_no or self._tracking_no
            await self._change(
                update.status, f"enterprise:{self._enterprise}", update.note, "enterprise_status"
            )
            if update.status in PATIENT_NOTICES:
                await self._notify(update.status)
            if update.status == sequence[-1]:
                return

    async def _finish_cancelled(self) -> None:
        assert self._cancellation is not None
        await self._change(
            "cancelled", self._cancellation.by, self._cancellation.reason, "cancelled"
        )

    async def _finish_refunded(self) -> None:
        refund = self._refund
        assert refund is not None
        if self._enterprise is not None:
            try:
                await workflow.execute_activity(
                    ACTIVITY_CANCEL_ORDER,
                    CancelOrder(
                        enterprise=self._enterprise,
                        prescription_id=self._input.prescription_id,
                        reason=refund.reason,
                        idempotency_key=f"{workflow.info().workflow_id}/cancel-order",
                    ),
                    start_to_close_timeout=ENTERPRISE_TIMEOUT,
                    schedule_to_close_timeout=ENTERPRISE_GIVE_UP,
                    retry_policy=ENTERPRISE_RETRY,
                )
            except ActivityError as err:
                await self._record("order_cancel_failed", SYSTEM_REVIEWER, str(err.cause or err))
        await self._change("refunded", refund.requested_by, refund.reason, "refunded")
        await self._notify("refunded", extra=f"，原因：{refund.reason}")

    # --- updates and queries ---------------------------------------------------------------

    @workflow.update(name=UPDATE_DECIDE)
    async def decide(self, decision: Decision) -> Conclusion:
        self._check_decision(decision)
        self._decision = decision
        await workflow.wait_condition(
            lambda: self._rounds[decision.round - 1].conclusion is not None
        )
        conclusion = self._rounds[decision.round - 1].conclusion
        if conclusion is None:
            raise UpdateRejected("处方已取消")
        if workflow.patched(DECISION_AFTER_RECORD):
            # The pharmacist is sent back to a queue read from the database: answered before the
            # conclusion is written, the queue could still list the prescription just decided.
            await workflow.wait_condition(lambda: self._recorded_round >= decision.round)
        return conclusion

    @decide.validator
    def _validate_decide(self, decision: Decision) -> None:
        self._check_decision(decision)

    def _check_decision(self, decision: Decision) -> None:
        current = self._rounds[-1] if self._rounds else None
        with refused_as_rejected(TransitionRefused):
            check_decision(
                self._status,
                decision.round,
                current_round=current.number if current else None,
                concluded=current is not None
                and (current.conclusion is not None or self._decision is not None),
            )

    @workflow.update(name=UPDATE_REVISE)
    async def revise(self, revision: Revision) -> ReviewRound:
        self._check_revision()
        self._revision = revision
        rounds = len(self._rounds)
        await workflow.wait_condition(
            lambda: len(self._rounds) > rounds or self._status in FINISHED_STATUSES
        )
        return self._rounds[-1]

    @revise.validator
    def _validate_revise(self, revision: Revision) -> None:  # noqa: ARG002 - fixed signature
        self._check_revision()

    def _check_revision(self) -> None:
        with refused_as_rejected(TransitionRefused):
            check_revision(self._status, revision_pending=self._revision is not None)

    @workflow.update(name=UPDATE_CANCEL)
    async def cancel(self, cancellation: Cancellation) -> PrescriptionState:
        self._check_cancellation()
        self._cancellation = cancellation
        await workflow.wait_condition(lambda: self._status in FINISHED_STATUSES)
        return self._state()

    @cancel.validator
    def _validate_cancel(self, cancellation: Cancellation) -> None:  # noqa: ARG002
        self._check_cancellation()

    def _check_cancellation(self) -> None:
        with refused_as_rejected(TransitionRefused):
            check_cancellation(self._status, cancellation_pending=self._cancellation is not None)

    @workflow.update(name=UPDATE_PAYMENT)
    async def record_payment(self, payment: Payment) -> PrescriptionState:
        if self._check_payment(payment):
            return self._state()
        self._payment = payment
        await workflow.wait_condition(lambda: self._status != "approved")
        return self._state()

    @record_payment.validator
    def _validate_payment(self, payment: Payment) -> None:
        self._check_payment(payment)

    def _check_payment(self, payment: Payment) -> bool:
        """True when this payment was already recorded (a redelivery)."""
        recorded = self._payment.payment_id if self._payment is not None else None
        with refused_as_rejected(TransitionRefused):
            return check_payment(self._status, payment.payment_id, recorded_payment_id=recorded)

    @workflow.update(name=UPDATE_ENTERPRISE_STATUS)
    async def enterprise_status(self, update: EnterpriseUpdate) -> PrescriptionState:
        if self._check_enterprise(update):
            return self._state()
        self._enterprise_updates.append(update)
        await workflow.wait_condition(
            lambda: self._enterprise_status == update.status or self._status in FINISHED_STATUSES
        )
        return self._state()

    @enterprise_status.validator
    def _validate_enterprise(self, update: EnterpriseUpdate) -> None:
        self._check_enterprise(update)

    def _check_enterprise(self, update: EnterpriseUpdate) -> bool:
        """True for a repeat of the current status; refuses any skip or reversal."""
        latest = self._enterprise_updates[-1].status if self._enterprise_updates else None
        with refused_as_rejected(TransitionRefused):
            return check_enterprise_status(
                self._status,
                update.status,
                enterprise=self._enterprise,
                mode=self._input.delivery.mode,
                # An enterprise is chosen only after a round approved the prescription.
                decoction=bool(self._rounds) and self._rounds[-1].content.decoction,
                current=latest or self._enterprise_status,
            )

    @workflow.update(name=UPDATE_REFUND)
    async def refund(self, refund: Refund) -> PrescriptionState:
        if self._check_refund(refund):
            return self._state()
        self._refund = refund
        await workflow.wait_condition(lambda: self._status in FINISHED_STATUSES)
        return self._state()

    @refund.validator
    def _validate_refund(self, refund: Refund) -> None:
        self._check_refund(refund)

    def _check_refund(self, refund: Refund) -> bool:
        """True when this refund was already recorded (a redelivery)."""
        recorded = self._refund.refund_id if self._refund is not None else None
        with refused_as_rejected(TransitionRefused):
            return check_refund(
                self._status,
                refund.refund_id,
                recorded_refund_id=recorded,
                refundable=self._input.config.refundable_statuses,
            )

    @workflow.query(name=QUERY_STATE)
    def state(self) -> PrescriptionState:
        return self._state()

    # --- helpers ----------------------------------------------------------------------------

    def _state(self) -> PrescriptionState:
        return PrescriptionState(
            prescription_id=self._input.prescription_id,
            status=self._status,
            round=len(self._rounds),
            rounds=list(self._rounds),
            payment=self._payment,
            enterprise=self._enterprise,
            tracking_no=self._tracking_no,
            refund=self._refund,
            history=list(self._history),
        )

    async def _change(self, status: RxStatus, by: str, note: str | None, kind: str) -> None:
        self._status = status
        self._history.append(StatusChange(status=status, at=workflow.now(), by=by, note=note))
        await self._record(kind, by, note, callback=True)

    async def _record(
        self, kind: str, actor: str, note: str | None, *, callback: bool = False
    ) -> None:
        self._seq += 1
        state = self._state()
        # The HIS hears of a change while it is being recorded, not after: at a review deadline
        # the conclusion's callback no longer waits for a database write (both are retried until
        # done, and callbacks stay in order). Runs started before this waited.
        early = callback and workflow.patched(CALLBACK_WITH_RECORD)
        if early:
            self._queue_callback(kind, note, state)
        request = RecordRequest(
            input=self._input,
            state=state,
            seq=self._seq,
            kind=kind,
            actor=actor,
            note=note,
            at=workflow.now(),
        )
        if kind == "concluded":
            # A local step would hold the workflow task, and with it the conclusion's callback
            # queued above, until the write is done: the deadline's path stays a regular activity.
            await database_activity(ACTIVITY_RECORD, request)
            self._recorded_round = len(self._rounds)
        else:
            await local_step(ACTIVITY_RECORD, request)
        if callback and not early:
            self._queue_callback(kind, note, state)

    def _queue_callback(self, kind: str, note: str | None, state: PrescriptionState) -> None:
        current = self._rounds[-1] if self._rounds else None
        conclusion = current.conclusion if current else None
        self._callbacks.append(
            HisCallback(
                hospital_code=self._input.hospital_code,
                prescription_no=self._input.prescription_no,
                prescription_id=self._input.prescription_id,
                seq=self._seq,
                event=kind,
                status=state.status,
                round=state.round,
                reviewer=conclusion.reviewer if conclusion and kind == "concluded" else None,
                reason=note,
                findings=current.findings if current and kind == "concluded" else [],
                at=workflow.now(),
                idempotency_key=f"{workflow.info().workflow_id}/callback/{self._seq}",
            )
        )

    async def _send_callbacks(self) -> None:
        """Delivers HIS callbacks one at a time, in order, each retried with backoff."""
        while True:
            await workflow.wait_condition(lambda: bool(self._callbacks) or self._closing)
            if not self._callbacks:
                return
            callback = self._callbacks[0]
            try:
                await workflow.execute_activity(
                    ACTIVITY_HIS_CALLBACK,
                    callback,
                    start_to_close_timeout=HIS_CALLBACK_TIMEOUT,
                    schedule_to_close_timeout=HIS_CALLBACK_GIVE_UP,
                    retry_policy=HIS_CALLBACK_RETRY,
                )
            except ActivityError as err:
                workflow.logger.warning("HIS callback %s given up: %s", callback.seq, err)
                await self._record(
                    "callback_failed", SYSTEM_REVIEWER, f"回调失败：{callback.event}"
                )
            self._callbacks.pop(0)

    async def _notify(self, kind: str, extra: str = "") -> None:
        info = workflow.info()
        key = f"{info.workflow_id}/notify/{kind}"
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                DELIVERY_WORKFLOW,
                MessageRequest(
                    key=key,
                    template="prescription_status",
                    patient_id=self._input.patient_id,
                    variables={
                        "prescription_no": self._input.prescription_no,
                        "status_text": PATIENT_NOTICES[kind] + extra,
                    },
                    hospital_code=self._input.hospital_code,
                    department_code=self._input.department_code,
                    workflow_id=info.workflow_id,
                ),
                id=delivery_workflow_id(key),
                # Messages run with the platform's other work, off the review queue, whose
                # worker may serve prescriptions only; their channels hang off the main queue.
                task_queue=base_task_queue(info.task_queue),
                search_attributes=workflow.info().typed_search_attributes,
                # The message outlives the prescription's workflow if need be.
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
