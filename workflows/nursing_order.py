"""One home-nursing order (互联网+护理服务, NUR-1..3), from the patient's order to their rating.

The patient's identity is checked with the real-name service, then the visit is paid through
the payment saga (a child). A qualified nurse may take it (接单) within the hospital's window;
past it, it is dispatched to the least-loaded qualified nurse on duty, and when there is none
the head nurses are alarmed (SMS) and may assign it (派单); still nobody by the time of the visit,
it is cancelled and refunded in full. A nurse may hand it to another until they reach the
patient (转单). The nurse records departure, arrival, start and end; a visit running past its
expected duration alarms the head nurses, and so does the nurse's one-press alarm. The patient
signs at the end, the nurse writes the nursing record on the item's template, the patient rates.
A cancellation refunds what the rules allow at that point (the refund saga, a child). Every
step is projected, audited and told to the patient.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from contracts.messages import DELIVERY_WORKFLOW, MessageRequest, delivery_workflow_id
    from contracts.nursing import (
        ACTIVITY_ALARM,
        ACTIVITY_CHARGE,
        ACTIVITY_DISPATCH,
        ACTIVITY_QUALIFIED,
        ACTIVITY_RECORD,
        ACTIVITY_VERIFY,
        NURSING_WORKFLOW,
        PATIENT,
        QUERY_STATE,
        SYSTEM,
        UPDATE_ALARM,
        UPDATE_ASSESS,
        UPDATE_ASSIGN,
        UPDATE_CANCEL,
        UPDATE_RATE,
        UPDATE_SIGN,
        UPDATE_TAKE,
        UPDATE_TRANSFER,
        UPDATE_VISIT,
        Alarm,
        Alarmed,
        Assessment,
        Assign,
        Cancel,
        Dispatched,
        NursingInput,
        NursingRating,
        NursingRef,
        NursingState,
        PatientSignature,
        Qualification,
        Qualified,
        RaiseAlarm,
        RecordNursing,
        Step,
        Take,
        Transfer,
        Verified,
        VisitStep,
    )
    from contracts.payment import (
        ACTIVITY_OPEN_REFUND,
        PAYMENT_WORKFLOW,
        REFUND_WORKFLOW,
        OpenedRefund,
        OpenRefund,
        PaymentInput,
        PaymentState,
        RefundState,
        payment_workflow_id,
        refund_workflow_id,
    )
    from nursing.alarms import LEVEL_NAMES, AlarmLevel
    from nursing.lifecycle import (
        VISITING,
        OrderStatus,
        StepRefused,
        cancellation_refund,
        check_assessment,
        check_patient_signature,
        check_rating,
        check_take,
        check_transfer,
        check_visit_step,
    )
    from workflows.retries import DATABASE_RETRY, DATABASE_TIMEOUT, IDENTITY_GIVE_UP
    from workflows.updates import UpdateRejected, refused_as_rejected, wait_for

NOBODY_REASON = "无护士接单，订单已取消并全额退款"


@workflow.defn(name=NURSING_WORKFLOW)
class NursingOrderWorkflow:
    @workflow.init
    def __init__(self, input: NursingInput) -> None:
        self._input = input
        self._status: OrderStatus = "verifying"
        self._nurse: str | None = None
        self._escalated = False
        self._payment_order_id: str | None = None
        self._refund_id: str | None = None
        self._refunded = 0
        self._rating: NursingRating | None = None
        self._cancel: Cancel | None = None
        self._steps: list[Step] = []
        self._seq = 0

    @workflow.run
    async def run(self, input: NursingInput) -> NursingState:
        state = await self._life(input)
        # An update still being answered (a rating that arrived with the end) finishes first.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return state

    async def _life(self, input: NursingInput) -> NursingState:
        if not await self._verified() or not await self._paid():
            return self.state()
        await self._record("waiting_nurse", "paid", SYSTEM, tell="已支付，正在为您安排护士")
        if not await self._nurse_found():
            return self.state()
        await workflow.wait_condition(
            lambda: (
                self._status not in ("accepted", "departed", "arrived") or self._cancel is not None
            )
        )
        if self._cancel is not None:
            return await self._cancelled()
        overrun = timedelta(minutes=input.item.expected_minutes) + timedelta(
            seconds=input.policy.overrun_grace_seconds
        )
        if not await wait_for(
            lambda: self._status != "in_service" or self._cancel is not None, overrun
        ):
            await self._alarm(
                "warning",
                f"上门服务超时：「{input.item.name}」已超过预计{input.item.expected_minutes}分钟，"
                "请联系护士确认安全",
                key="overrun",
            )
        await workflow.wait_condition(
            lambda: self._status != "in_service" or self._cancel is not None
        )
        if self._cancel is not None:
            return await self._cancelled()
        waited = timedelta(seconds=input.policy.signature_wait_seconds)
        if not await wait_for(lambda: self._status != "served", waited):
            await self._record("signed", "unsigned", SYSTEM, note="患者未在时限内签名")
        await workflow.wait_condition(lambda: self._status == "assessed")
        window = timedelta(seconds=input.policy.rating_window_seconds)
        await wait_for(lambda: self._rating is not None, window)
        await self._record("completed", "completed", SYSTEM, tell="服务已完成，感谢您的信任")
        return self.state()

    async def _verified(self) -> bool:
        try:
            verified = await workflow.execute_activity(
                ACTIVITY_VERIFY,
                self._ref(),
                result_type=Verified,
                start_to_close_timeout=DATABASE_TIMEOUT,
                schedule_to_close_timeout=IDENTITY_GIVE_UP,
                retry_policy=DATABASE_RETRY,
            )
        except ActivityError:
            verified = None
        if verified is None or verified.result != "match":
            why = (
                "实名认证服务暂不可用"
                if verified is None
                else "实名认证未通过，请核对姓名和身份证号"
            )
            await self._record("failed", "identity_refused", SYSTEM, note=why, tell=why)
            return False
        await self._record("paying", "identity_verified", SYSTEM)
        return True

    async def _paid(self) -> bool:
        payment = await workflow.execute_activity(
            ACTIVITY_CHARGE,
            self._ref(),
            result_type=PaymentInput,
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )
        self._payment_order_id = payment.order_id
        paid = await workflow.execute_child_workflow(
            PAYMENT_WORKFLOW,
            payment,
            id=payment_workflow_id(payment.order_id),
            search_attributes=workflow.info().typed_search_attributes,
            result_type=PaymentState,
        )
        if paid.status != "settled":
            why = paid.failure_reason or "支付未完成"
            await self._record("failed", "payment_failed", SYSTEM, note=why, tell=why)
            return False
        return True

    async def _nurse_found(self) -> bool:
        policy = self._input.policy
        window = timedelta(seconds=policy.take_window_seconds)
        if not await wait_for(lambda: self._nurse is not None or self._cancel, window):
            dispatched = await workflow.execute_activity(
                ACTIVITY_DISPATCH,
                self._ref(),
                result_type=Dispatched,
                start_to_close_timeout=DATABASE_TIMEOUT,
                retry_policy=DATABASE_RETRY,
            )
            if dispatched.nurse_id is not None and self._nurse is None:
                self._nurse = dispatched.nurse_id
                await self._record(
                    "accepted",
                    "dispatched",
                    SYSTEM,
                    tell="已为您安排护士",
                    note=dispatched.nurse_id,
                )
            elif self._nurse is None:
                self._escalated = True
                await self._record("waiting_nurse", "escalated", SYSTEM)
                await self._alarm(
                    "warning",
                    f"「{self._input.item.name}」订单超时无人接单且无可派护士，请护士长派单",
                    key="unassigned",
                )
                until = self._input.visit_at - workflow.now()
                if not await wait_for(lambda: self._nurse is not None or self._cancel, until):
                    self._cancel = Cancel(by=SYSTEM, by_staff=True, reason=NOBODY_REASON)
        if self._cancel is not None:
            await self._cancelled()
            return False
        return True

    async def _cancelled(self) -> NursingState:
        cancel = self._cancel
        assert cancel is not None
        amount = cancellation_refund(
            self._status,
            self._input.item.price_fen,
            self._input.item.visit_fee_fen,
            by_staff=cancel.by_staff,
        )
        if self._payment_order_id is not None and amount > 0:
            self._refund_id = str(workflow.uuid4())
            opened = await workflow.execute_activity(
                ACTIVITY_OPEN_REFUND,
                OpenRefund(
                    refund_id=self._refund_id,
                    order_id=self._payment_order_id,
                    amount_fen=amount,
                    reason=cancel.reason,
                    requested_by=f"nursing:{cancel.by}",
                ),
                result_type=OpenedRefund,
                start_to_close_timeout=DATABASE_TIMEOUT,
                retry_policy=DATABASE_RETRY,
            )
            if opened.input is not None:
                refunded = await workflow.execute_child_workflow(
                    REFUND_WORKFLOW,
                    opened.input,
                    id=refund_workflow_id(self._refund_id),
                    search_attributes=workflow.info().typed_search_attributes,
                    result_type=RefundState,
                )
                if refunded.status == "succeeded":
                    self._refunded = opened.input.amount_fen
        told = cancel.reason + (f"，已退款{self._refunded / 100:.2f}元" if self._refunded else "")
        await self._record("cancelled", "cancelled", cancel.by, note=cancel.reason, tell=told)
        return self.state()

    async def _alarm(self, level: AlarmLevel, text: str, *, key: str) -> None:
        self._steps.append(Step(kind=f"alarm_{level}", at=workflow.now(), by=SYSTEM, note=text))
        body = f"【{LEVEL_NAMES[level]}】{text}"
        alarmed = await workflow.execute_activity(
            ACTIVITY_ALARM,
            RaiseAlarm(order_id=self._input.order_id, level=level, text=body, key=key),
            result_type=Alarmed,
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )
        for head in alarmed.texted:
            message_key = f"{workflow.info().workflow_id}/alarm/{key}/{head.staff_id}"
            await self._send(
                MessageRequest(
                    key=message_key,
                    template="nursing_alarm",
                    phone=head.phone,
                    variables={"alarm_text": body},
                    urgent=True,
                    hospital_code=self._input.hospital_code,
                    department_code=self._input.department_code,
                    workflow_id=workflow.info().workflow_id,
                )
            )

    async def _send(self, request: MessageRequest) -> None:
        # Sent on its own: the order does not wait for the delivery (a child left running).
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                DELIVERY_WORKFLOW,
                request,
                id=delivery_workflow_id(request.key),
                search_attributes=workflow.info().typed_search_attributes,
                parent_close_policy=ParentClosePolicy.ABANDON,
            )

    def _ref(self) -> NursingRef:
        return NursingRef(order_id=self._input.order_id)

    async def _record(
        self,
        status: OrderStatus,
        kind: str,
        by: str,
        *,
        note: str | None = None,
        tell: str | None = None,
        **extra: object,
    ) -> None:
        self._status = status
        self._steps.append(Step(kind=kind, at=workflow.now(), by=by, note=note))
        self._seq += 1
        await workflow.execute_activity(
            ACTIVITY_RECORD,
            RecordNursing(input=self._input, state=self.state(), seq=self._seq, **extra),
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )
        if tell is not None:
            key = f"{workflow.info().workflow_id}/tell/{self._seq}"
            await self._send(
                MessageRequest(
                    key=key,
                    template="nursing_status",
                    patient_id=self._input.patient_id,
                    variables={"order_title": self._input.item.name, "status_text": tell},
                    urgent=True,
                    hospital_code=self._input.hospital_code,
                    department_code=self._input.department_code,
                    workflow_id=workflow.info().workflow_id,
                )
            )

    async def _qualified(self, nurse_id: str) -> bool:
        found = await workflow.execute_activity(
            ACTIVITY_QUALIFIED,
            Qualification(nurse_id=nurse_id, qualification=self._input.item.qualification),
            result_type=Qualified,
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )
        return bool(found.qualified)

    # ---- nurses ------------------------------------------------------------------------

    @workflow.update(name=UPDATE_TAKE)
    async def take(self, take: Take) -> NursingState:
        with refused_as_rejected(StepRefused):
            check_take(self._status, self._nurse is not None, await self._qualified(take.nurse_id))
        self._nurse = take.nurse_id
        await self._record("accepted", "taken", take.nurse_id, tell="护士已接单")
        return self.state()

    @take.validator
    def _check_take(self, take: Take) -> None:  # noqa: ARG002 - fixed signature
        with refused_as_rejected(StepRefused):
            check_take(self._status, self._nurse is not None, qualified=True)

    @workflow.update(name=UPDATE_ASSIGN)
    async def assign(self, assign: Assign) -> NursingState:
        with refused_as_rejected(StepRefused):
            check_take(
                self._status, self._nurse is not None, await self._qualified(assign.nurse_id)
            )
        self._nurse = assign.nurse_id
        await self._record(
            "accepted", "assigned", assign.by, note=assign.nurse_id, tell="已为您安排护士"
        )
        return self.state()

    @assign.validator
    def _check_assign(self, assign: Assign) -> None:  # noqa: ARG002
        with refused_as_rejected(StepRefused):
            check_take(self._status, self._nurse is not None, qualified=True)

    @workflow.update(name=UPDATE_TRANSFER)
    async def transfer(self, transfer: Transfer) -> NursingState:
        qualified = await self._qualified(transfer.to_nurse_id)
        with refused_as_rejected(StepRefused):
            check_transfer(
                self._status,
                transfer.by == self._nurse,
                transfer.to_nurse_id == self._nurse,
                qualified,
            )
        self._nurse = transfer.to_nurse_id
        await self._record(
            self._status,
            "transferred",
            transfer.by,
            note=f"{transfer.to_nurse_id}：{transfer.reason}",
            tell="您的订单已转由另一位护士服务",
        )
        return self.state()

    @transfer.validator
    def _check_transfer(self, transfer: Transfer) -> None:
        with refused_as_rejected(StepRefused):
            check_transfer(
                self._status,
                transfer.by == self._nurse,
                transfer.to_nurse_id == self._nurse,
                qualified=True,
            )

    @workflow.update(name=UPDATE_VISIT)
    async def visit_step(self, step: VisitStep) -> NursingState:
        after = check_visit_step(self._status, step.step, step.by == self._nurse)
        tell = {
            "departed": "护士已出发，请保持电话畅通",
            "arrived": "护士已到达",
            "served": "服务已完成，请确认并签名",
        }.get(after)
        await self._record(after, step.step, step.by, tell=tell)
        return self.state()

    @visit_step.validator
    def _check_visit(self, step: VisitStep) -> None:
        with refused_as_rejected(StepRefused):
            check_visit_step(self._status, step.step, step.by == self._nurse)

    @workflow.update(name=UPDATE_ALARM)
    async def alarm(self, alarm: Alarm) -> NursingState:
        text = f"护士一键报警：「{self._input.item.name}」上门服务中"
        await self._alarm(
            alarm.level,
            text + (f"（{alarm.note}）" if alarm.note else ""),
            key=f"alarm-{len(self._steps)}",
        )
        return self.state()

    @alarm.validator
    def _check_alarm(self, alarm: Alarm) -> None:
        if alarm.by != self._nurse or self._status not in VISITING:
            raise UpdateRejected("仅接单护士在上门服务期间可以报警")

    @workflow.update(name=UPDATE_ASSESS)
    async def assess(self, assessment: Assessment) -> NursingState:
        await self._record(
            "assessed",
            "assessed",
            assessment.by,
            assessment=dict(assessment.answers),
            tell="护理记录已完成，请为本次服务评价",
        )
        return self.state()

    @assess.validator
    def _check_assess(self, assessment: Assessment) -> None:
        with refused_as_rejected(StepRefused):
            check_assessment(self._status, assessment.by == self._nurse)

    # ---- the patient -------------------------------------------------------------------

    @workflow.update(name=UPDATE_SIGN)
    async def patient_sign(self, signature: PatientSignature) -> NursingState:
        await self._record(
            "signed",
            "signed",
            PATIENT,
            signed_name=signature.signed_name,
            signature=signature.signature,
        )
        return self.state()

    @patient_sign.validator
    def _check_sign(self, signature: PatientSignature) -> None:  # noqa: ARG002
        with refused_as_rejected(StepRefused):
            check_patient_signature(self._status)

    @workflow.update(name=UPDATE_RATE)
    async def rate(self, rating: NursingRating) -> NursingState:
        self._rating = rating
        await self._record(
            self._status, "rated", PATIENT, rating_comment=rating.comment, note=f"{rating.stars}星"
        )
        return self.state()

    @rate.validator
    def _check_rate(self, rating: NursingRating) -> None:  # noqa: ARG002
        with refused_as_rejected(StepRefused):
            check_rating(self._status, self._rating is not None)

    @workflow.update(name=UPDATE_CANCEL)
    async def cancel(self, cancel: Cancel) -> NursingState:
        self._cancel = cancel
        await workflow.wait_condition(lambda: self._status in ("cancelled", "failed"))
        return self.state()

    @cancel.validator
    def _check_cancel(self, cancel: Cancel) -> None:
        if self._cancel is not None:
            raise UpdateRejected("订单正在取消")
        if self._status in ("verifying", "paying"):
            raise UpdateRejected("支付进行中，请稍后再取消")
        with refused_as_rejected(StepRefused):
            cancellation_refund(
                self._status,
                self._input.item.price_fen,
                self._input.item.visit_fee_fen,
                by_staff=cancel.by_staff,
            )

    @workflow.query(name=QUERY_STATE)
    def state(self) -> NursingState:
        return NursingState(
            status=self._status,
            nurse_id=self._nurse,
            escalated=self._escalated,
            payment_order_id=self._payment_order_id,
            refund_id=self._refund_id,
            refunded_fen=self._refunded,
            rating=self._rating.stars if self._rating else None,
            steps=list(self._steps),
        )
