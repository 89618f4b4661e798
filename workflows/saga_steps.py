"""The steps the payment sagas are made of: the translation of an activity failure into a saga
failure, and patient notifications. Deterministic; no I/O. Their retry policies are in
workflows/retries.py.

Two kinds of step:
- forward steps run until a deadline and fail the saga (which then compensates) when the
  other party refuses or stays unreachable;
- compensation and post-money steps (a refund already accepted, telling the HIS about it)
  never give up by themselves: money that moved must be accounted for, so they retry with
  capped backoff until an operator intervenes, visible as a pending activity in the Temporal UI.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    WorkflowAlreadyStartedError,
)
from temporalio.exceptions import (
    TimeoutError as TemporalTimeout,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from contracts.messages import (
        DELIVERY_WORKFLOW,
        LinkSpec,
        MessageRequest,
        delivery_workflow_id,
    )
    from contracts.payment import REFUSED
    from core.hospitals import PaymentPolicy
    from workflows.retries import SAGA_FORWARD_RETRY, SAGA_POLL_RETRY, SAGA_UNTIL_DONE_RETRY

T = TypeVar("T")

# Links in payment messages open the order's page for this long.
LINK_VALID_FOR = timedelta(days=30)


class SagaFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refusal(error: ActivityError) -> ApplicationError | None:
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type == REFUSED:
        return cause
    return None


def _describe(error: ActivityError) -> str:
    cause = error.cause
    if isinstance(cause, TemporalTimeout):
        return "超时"
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or error)


def _timeouts(policy: PaymentPolicy) -> dict[str, Any]:
    return {"start_to_close_timeout": timedelta(seconds=policy.call_timeout_seconds)}


async def forward(
    activity: str,
    arg: Any,
    result_type: type[T],
    *,
    policy: PaymentPolicy,
    what: str,
    give_up: timedelta | None = None,
) -> T:
    """A forward step; a refusal or giving up becomes ``SagaFailed`` with a reason for people."""
    try:
        result: T = await workflow.execute_activity(
            activity,
            arg,
            result_type=result_type,
            retry_policy=SAGA_FORWARD_RETRY,
            schedule_to_close_timeout=give_up or timedelta(seconds=policy.forward_give_up_seconds),
            **_timeouts(policy),
        )
    except ActivityError as error:
        refused = refusal(error)
        if refused is not None:
            raise SagaFailed(f"{what}被拒绝：{refused.message}") from error
        raise SagaFailed(f"{what}未能完成：{_describe(error)}") from error
    return result


async def until_done(
    activity: str, arg: Any, result_type: type[T], *, policy: PaymentPolicy
) -> T | ApplicationError:
    """A step that must happen: retried without end; only a refusal comes back (as the error)."""
    try:
        result: T = await workflow.execute_activity(
            activity,
            arg,
            result_type=result_type,
            retry_policy=SAGA_UNTIL_DONE_RETRY,
            **_timeouts(policy),
        )
    except ActivityError as error:
        refused = refusal(error)
        if refused is None:
            raise
        return refused
    return result


async def attempt(
    activity: str, arg: Any, result_type: type[T], *, policy: PaymentPolicy
) -> T | None:
    """A step whose failure only means "try again later" (a status poll): None on failure."""
    try:
        result: T = await workflow.execute_activity(
            activity,
            arg,
            result_type=result_type,
            retry_policy=SAGA_POLL_RETRY,
            **_timeouts(policy),
        )
    except ActivityError:
        return None
    return result


async def notify(
    *,
    key: str,
    patient_id: str,
    hospital_code: str,
    department_code: str | None,
    order_id: str,
    title: str,
    amount: str,
    status_text: str,
    urgent: bool = False,
) -> None:
    """A payment message to the patient (PAY-6), once per key; it outlives the workflow."""
    info = workflow.info()
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await workflow.start_child_workflow(
            DELIVERY_WORKFLOW,
            MessageRequest(
                key=key,
                template="payment_notice",
                patient_id=patient_id,
                variables={
                    "order_title": title,
                    "amount": amount,
                    "status_text": status_text,
                },
                link=LinkSpec(task_id=order_id, valid_for=LINK_VALID_FOR, path="pay"),
                urgent=urgent,
                hospital_code=hospital_code,
                department_code=department_code,
                workflow_id=info.workflow_id,
            ),
            id=delivery_workflow_id(key),
            search_attributes=workflow.info().typed_search_attributes,
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
