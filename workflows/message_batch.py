"""A batch send to a selected group (MSG-2), page by page, many messages per activity.

Each recipient's message is the same logical message a MessageDelivery workflow sends (one row in
the send log under a key derived from the batch and the patient), but a page's messages are
composed in one step and sent by ``BulkDelivery``: a few activities of up to BULK_SEND_SIZE
messages each, recorded in one step. A workflow per message cost the Temporal server about
six workflow starts' worth of work per message; this costs it a few per page (issue 15).

Resumable by construction: recipients are read page by page from the database, progress survives
worker crashes and continue-as-new, and the send log keeps a resumed page from messaging anyone
twice. Sending speed is limited per channel by the bulk queues' server-side rate limits and
each worker's pacing, not here. Batches started before bulk sends keep one child delivery
workflow per recipient.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from contracts.messages import (
        ACTIVITY_BATCH_FINISHED,
        ACTIVITY_BATCH_PAGE,
        ACTIVITY_PREPARE_MANY,
        BATCH_WORKFLOW,
        DELIVERY_WORKFLOW,
        QUERY_BATCH_PROGRESS,
        BatchFinished,
        BatchInput,
        BatchMessage,
        BatchPage,
        BatchPageRequest,
        BatchProgress,
        DeliveryOutcome,
        PreparedMany,
        PreparedMessage,
        PrepareMany,
        batch_message_key,
        delivery_workflow_id,
    )
    from workflows.bulk_delivery import BulkDelivery
    from workflows.local_steps import database_activity
    from workflows.retries import (
        DATABASE_RETRY,
        DATABASE_TIMEOUT,
    )

PAGE_SIZE = 100
# Bulk sends: recipients per page (a page is composed in one transaction and sent by up to
# BULK_PAGE_SIZE / BULK_SEND_SIZE activities at once), pages in flight at once (three keep one
# composing while others send and record), and recipients per run at most before continuing as
# new. A run usually continues sooner, when the server suggests it: at about 600 bytes of history
# per recipient, its 4 MB suggestion comes at about 6,500. Each new run starts with its pipeline
# empty, so runs are made as long as the history allows (at 2,000 a run the sends stopped as the
# pipeline emptied every five or six seconds).
BULK_PAGE_SIZE = 200
BULK_RUN_LIMIT = 10000
BULK_PAGES_IN_FLIGHT = 3
BULK_SENDS = "bulk-batch-sends"
# Children in flight at once; the channel rate limits decide the actual sending speed.
MAX_IN_FLIGHT = 50
# Recipients handled per workflow run before continuing as new, to keep each history small.
RUN_LIMIT = 500


@workflow.defn(name=BATCH_WORKFLOW)
class MessageBatchWorkflow:
    @workflow.init
    def __init__(self, input: BatchInput) -> None:
        self._input = input
        self._processed = input.offset
        self._counts: dict[str, int] = dict(input.counts)
        self._finished = False
        self._bulk = BulkDelivery(self._count)

    @workflow.run
    async def run(self, input: BatchInput) -> BatchProgress:
        if workflow.patched(BULK_SENDS):
            await self._run_in_bulk(input)
        else:
            await self._run_in_children(input)
        await workflow.execute_activity(
            ACTIVITY_BATCH_FINISHED,
            BatchFinished(batch_id=input.batch_id, counts=self._counts, at=workflow.now()),
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )
        self._finished = True
        return self.progress()

    async def _run_in_bulk(self, input: BatchInput) -> None:
        """Pages overlap: the next is read and composed while this one is being sent."""
        offset = input.offset
        handled = 0
        sending: list[asyncio.Task[None]] = []
        while offset < input.total:
            patient_ids = await self._page(offset, BULK_PAGE_SIZE)
            if not patient_ids:
                break
            sending.append(asyncio.ensure_future(self._send_in_bulk(patient_ids)))
            offset += len(patient_ids)
            handled += len(patient_ids)
            if len(sending) >= BULK_PAGES_IN_FLIGHT:
                await sending.pop(0)
            if offset < input.total and (
                handled >= BULK_RUN_LIMIT or workflow.info().is_continue_as_new_suggested()
            ):
                await asyncio.gather(*sending)
                self._continue_as_new(offset)
        await asyncio.gather(*sending)

    async def _run_in_children(self, input: BatchInput) -> None:
        offset = input.offset
        handled = 0
        while offset < input.total:
            patient_ids = await self._page(offset, PAGE_SIZE)
            if not patient_ids:
                break
            await self._send_page(patient_ids)
            offset += len(patient_ids)
            handled += len(patient_ids)
            self._processed = offset
            if offset < input.total and (
                handled >= RUN_LIMIT or workflow.info().is_continue_as_new_suggested()
            ):
                self._continue_as_new(offset)

    async def _page(self, offset: int, limit: int) -> list[str]:
        page: BatchPage = await workflow.execute_activity(
            ACTIVITY_BATCH_PAGE,
            BatchPageRequest(batch_id=self._input.batch_id, offset=offset, limit=limit),
            result_type=BatchPage,
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )
        return page.patient_ids

    def _continue_as_new(self, offset: int) -> NoReturn:
        workflow.continue_as_new(
            self._input.model_copy(update={"offset": offset, "counts": dict(self._counts)})
        )

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
        key = batch_message_key(self._input.batch_id, patient_id)
        async with slots:
            try:
                outcome = await workflow.execute_child_workflow(
                    DELIVERY_WORKFLOW,
                    self._input.request(patient_id),
                    id=delivery_workflow_id(key),
                    result_type=DeliveryOutcome,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
                status = outcome.status
            except WorkflowAlreadyStartedError:
                # Handled by an earlier run of this batch (e.g. before an operator's reset).
                status = "already_handled"
        self._count(status)

    def _count(self, status: str) -> None:
        self._counts[status] = self._counts.get(status, 0) + 1

    def _message(self) -> BatchMessage:
        """The input without the run's own progress, for a page's compose step."""
        return BatchMessage.model_validate(self._input.model_dump(include=_SHARED))

    async def _send_in_bulk(self, patient_ids: list[str]) -> None:
        # A page's steps are regular activities: as local ones they would hold the workflow task,
        # and with it the other page's sends (see workflows/local_steps.py).
        prepared: PreparedMany = await database_activity(
            ACTIVITY_PREPARE_MANY,
            PrepareMany(batch=self._message(), patient_ids=patient_ids, now=workflow.now()),
            result_type=PreparedMany,
        )
        ready: list[PreparedMessage] = []
        for message in prepared.messages:
            if message.status == "ready":
                ready.append(message)
            else:
                self._count("sent" if message.status == "done" else message.status)
        # Those due now go at once; those held by quiet hours go when their hours end (the same
        # moment for a whole page, or a few).
        due: list[PreparedMessage] = []
        held: dict[datetime, list[PreparedMessage]] = {}
        for message in ready:
            if message.not_before is not None and message.not_before > workflow.now():
                held.setdefault(message.not_before, []).append(message)
            else:
                due.append(message)
        await self._bulk.deliver(due)
        for not_before in sorted(held):
            await workflow.sleep(max(not_before - workflow.now(), timedelta(0)))
            await self._bulk.deliver(held[not_before])
        self._processed += len(patient_ids)


_SHARED = set(BatchMessage.model_fields)
