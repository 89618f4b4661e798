"""A batch send to a selected group (MSG-2): one child delivery workflow per recipient.

Resumable by construction: recipients are read page by page from the database, each child's id is
derived from the batch and the patient, and progress survives worker crashes and continue-as-new,
so a resumed batch never messages anyone twice. Sending speed is limited per channel by the
channel task queues' server-side rate limits, not here.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from contracts.messages import (
        ACTIVITY_BATCH_FINISHED,
        ACTIVITY_BATCH_PAGE,
        BATCH_WORKFLOW,
        DELIVERY_WORKFLOW,
        QUERY_BATCH_PROGRESS,
        BatchFinished,
        BatchInput,
        BatchPage,
        BatchPageRequest,
        BatchProgress,
        DeliveryOutcome,
        MessageRequest,
        delivery_workflow_id,
    )
    from workflows.retries import DATABASE_RETRY, DATABASE_TIMEOUT

PAGE_SIZE = 100
# Children in flight at once; the channel rate limits decide the actual sending speed.
MAX_IN_FLIGHT = 50
# Recipients handled per workflow run before continuing as new, to keep each history small.
RUN_LIMIT = 500


def batch_message_key(batch_id: str, patient_id: str) -> str:
    return f"batch:{batch_id}:{patient_id}"


@workflow.defn(name=BATCH_WORKFLOW)
class MessageBatchWorkflow:
    @workflow.init
    def __init__(self, input: BatchInput) -> None:
        self._input = input
        self._processed = input.offset
        self._counts: dict[str, int] = dict(input.counts)
        self._finished = False

    @workflow.run
    async def run(self, input: BatchInput) -> BatchProgress:
        offset = input.offset
        handled = 0
        while offset < input.total:
            page = await workflow.execute_activity(
                ACTIVITY_BATCH_PAGE,
                BatchPageRequest(batch_id=input.batch_id, offset=offset, limit=PAGE_SIZE),
                result_type=BatchPage,
                start_to_close_timeout=DATABASE_TIMEOUT,
                retry_policy=DATABASE_RETRY,
            )
            if not page.patient_ids:
                break
            await self._send_page(page.patient_ids)
            offset += len(page.patient_ids)
            handled += len(page.patient_ids)
            self._processed = offset
            if offset < input.total and (
                handled >= RUN_LIMIT or workflow.info().is_continue_as_new_suggested()
            ):
                workflow.continue_as_new(
                    input.model_copy(update={"offset": offset, "counts": dict(self._counts)})
                )
        await workflow.execute_activity(
            ACTIVITY_BATCH_FINISHED,
            BatchFinished(batch_id=input.batch_id, counts=self._counts, at=workflow.now()),
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )
        self._finished = True
        return self.progress()

    @workflow.query(name=QUERY_BATCH_PROGRESS)
    def progress(self) -> BatchProgress:
        return BatchProgress(
            batch_id=self._input.batch_id,
            total=self._input.total,
            processed=self._processed,
            counts=dict(self._counts),
            finished=self._finished,
        )

    async def _send_page(self, patient_ids: list[str]) -> None:
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        await asyncio.gather(*(self._send_one(patient_id, slots) for patient_id in patient_ids))

    async def _send_one(self, patient_id: str, slots: asyncio.Semaphore) -> None:
        batch = self._input
        key = batch_message_key(batch.batch_id, patient_id)
        async with slots:
            try:
                outcome = await workflow.execute_child_workflow(
                    DELIVERY_WORKFLOW,
                    MessageRequest(
                        key=key,
                        template=batch.template,
                        patient_id=patient_id,
                        variables=batch.variables,
                        hospital_code=batch.hospital_code,
                        department_code=batch.department_code,
                        sender=batch.sender,
                        batch_id=batch.batch_id,
                    ),
                    id=delivery_workflow_id(key),
                    result_type=DeliveryOutcome,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
                status = outcome.status
            except WorkflowAlreadyStartedError:
                # Handled by an earlier run of this batch (e.g. before an operator's reset).
                status = "already_handled"
        self._counts[status] = self._counts.get(status, 0) + 1
