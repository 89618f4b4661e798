"""Pushes go through a few long-running outboxes that send them many at a time: every push reaches
its patient once, however many arrive together, and a push whose row commits after the outbox
first looks for it is still sent, once."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from contracts.messages import (
    PUSH_OUTBOX_SHARDS,
    PUSH_OUTBOX_WORKFLOW,
    QUERY_OUTBOX,
    SIGNAL_PUSHED,
    MessageRequest,
    OutboxInput,
    OutboxProgress,
    Pushed,
    push_outbox_id,
)
from core.db import transaction
from core.models import utcnow
from harness.waiting import eventually
from tests.messaging.conftest import NOTICE, Stack, StackFactory


async def _outbox(stack: Stack, workflow_id: str) -> OutboxProgress:
    handle = stack.env.client.get_workflow_handle(workflow_id)
    progress: OutboxProgress = await handle.query(QUERY_OUTBOX, result_type=OutboxProgress)
    return progress


async def test_pushes_arriving_together_each_reach_their_patient_once(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    phones = [f"1380013{n:04d}" for n in range(60)]
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        responses = await asyncio.gather(
            *(
                stack.push(idempotency_key=f"together-{n}", to={"phone": phone})
                for n, phone in enumerate(phones)
            )
        )
        assert {r.status_code for r in responses} == {202}
        for response in responses:
            await stack.wait_status(response.json()["message_id"], "delivered")
        outboxes = {r.json()["workflow_id"] for r in responses}
        progress = [await _outbox(stack, workflow_id) for workflow_id in outboxes]

    assert sorted(m.to for m in stack.twilio.messages.values()) == sorted(f"+86{p}" for p in phones)
    # Spread over the task queue's outboxes, which together counted each message once.
    assert 1 < len(outboxes) <= PUSH_OUTBOX_SHARDS
    assert sum(p.counts.get("sent", 0) for p in progress) == len(phones)
    assert all(p.waiting == p.held == p.pages_in_flight == 0 for p in progress)


async def test_a_push_signalled_before_its_row_commits_is_sent_once(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        patient = await stack.patient()
        queue = stack.settings.temporal_task_queue
        key = f"late-commit-{patient.id}"
        outbox = push_outbox_id(queue, key)
        async with transaction(stack.sessions) as session:
            request = MessageRequest(
                key=key, template="notice_generic", patient_id=patient.id, variables=NOTICE
            )
            message = await stack.composer.compose(session, request, now=utcnow())
            await session.flush()
            await stack.env.client.start_workflow(
                PUSH_OUTBOX_WORKFLOW,
                OutboxInput(),
                id=outbox,
                task_queue=queue,
                start_signal=SIGNAL_PUSHED,
                start_signal_args=[Pushed(message_ids=[message.id])],
            )

            async def looked_and_missed() -> bool:
                return (await _outbox(stack, outbox)).held == 1

            # The outbox has looked for the row, not found it, and will look again.
            await eventually(looked_and_missed, what="the outbox to miss the uncommitted row")
            assert stack.twilio.messages == {}
        await stack.wait_status(message.id, "delivered")

        # The same id signalled again is found sent and not sent twice.
        await stack.env.client.get_workflow_handle(outbox).signal(
            SIGNAL_PUSHED, Pushed(message_ids=[message.id])
        )

        async def seen_again() -> bool:
            return (await _outbox(stack, outbox)).counts.get("duplicate", 0) == 1

        await eventually(seen_again, what="the outbox to find the message sent")

    assert len(stack.twilio.messages) == 1


async def test_outboxes_continue_as_new_without_losing_or_repeating_a_push(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory, record_history: Any
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        queue = stack.settings.temporal_task_queue
        shards = sorted({push_outbox_id(queue, f"push:{n}") for n in range(100)})
        first_runs = {}
        for workflow_id in shards:
            # Two pages a run, where production has 500 or the server's suggestion.
            handle = await stack.env.client.start_workflow(
                PUSH_OUTBOX_WORKFLOW, OutboxInput(pages_per_run=2), id=workflow_id, task_queue=queue
            )
            first_runs[workflow_id] = handle.first_execution_run_id
        # One at a time, so each is a page of its own and every outbox continues as new,
        # then all at once, so that some arrive while an outbox is continuing.
        one_by_one = []
        for n in range(16):
            response = await stack.push(idempotency_key=f"wave1-{n}", to={"phone": _phone(n)})
            one_by_one.append(response.json()["message_id"])
            await stack.wait_status(one_by_one[-1], "delivered")
        together = await asyncio.gather(
            *(
                stack.push(idempotency_key=f"wave2-{n}", to={"phone": _phone(n)})
                for n in range(16, 56)
            )
        )
        for response in together:
            await stack.wait_status(response.json()["message_id"], "delivered")
        described = {
            workflow_id: await stack.env.client.get_workflow_handle(workflow_id).describe()
            for workflow_id in shards
        }
        first = stack.env.client.get_workflow_handle(shards[0], run_id=first_runs[shards[0]])
        await record_history(first, "push_outbox_v1_continued")
        progress = [await _outbox(stack, workflow_id) for workflow_id in shards]

    assert sorted(m.to for m in stack.twilio.messages.values()) == sorted(
        f"+86{_phone(n)}" for n in range(56)
    )
    # Every outbox that sent more than two pages did so in a later run, carrying its counts.
    assert all(d.run_id != first_runs[w] for w, d in described.items())
    assert sum(p.counts.get("sent", 0) for p in progress) == 56


async def test_a_push_is_not_held_up_by_a_page_retrying_while_its_outbox_is_due_to_continue(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory, record_history: Any
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        outbox = push_outbox_id(stack.settings.temporal_task_queue, "push:draining")
        handle, retrying = await _retrying_its_first_page(
            stack, outbox, OutboxInput(), "13900139001"
        )
        [urgent] = await _composed(stack, "13900139002")
        await handle.signal(SIGNAL_PUSHED, Pushed(message_ids=[urgent]))
        await stack.wait_status(urgent, "delivered")
        assert (await stack.message(retrying)).status not in {"sent", "delivered"}
        assert (await handle.describe()).run_id == handle.first_execution_run_id

        stack.twilio.faults.failing_numbers = []
        await stack.wait_status(retrying, "delivered")

        async def continued() -> bool:
            described = await stack.env.client.get_workflow_handle(outbox).describe()
            return described.run_id != handle.first_execution_run_id

        await eventually(continued, what="the outbox to continue as new once its pages are done")
        first = stack.env.client.get_workflow_handle(outbox, run_id=handle.first_execution_run_id)
        await record_history(first, "push_outbox_v2_sends_while_draining")
        progress = await _outbox(stack, outbox)

    assert sorted(m.to for m in stack.twilio.messages.values()) == [
        "+8613900139001",
        "+8613900139002",
    ]
    assert progress.counts.get("sent") == 2


async def test_past_its_history_bound_a_draining_outbox_leaves_new_pushes_to_its_next_run(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        outbox = push_outbox_id(stack.settings.temporal_task_queue, "push:over-bound")
        # Its history is past the bound from the start.
        over_bound = OutboxInput(drain_history_events=1)
        handle, _ = await _retrying_its_first_page(stack, outbox, over_bound, "13900139003")
        [waiting] = await _composed(stack, "13900139004")
        await handle.signal(SIGNAL_PUSHED, Pushed(message_ids=[waiting]))

        async def left_waiting() -> OutboxProgress | None:
            progress = await _outbox(stack, outbox)
            return progress if progress.waiting else None

        held_back = await eventually(left_waiting, what="the second push left waiting")
        unsent = await stack.message(waiting)

        stack.twilio.faults.failing_numbers = []
        await stack.wait_status(waiting, "delivered")
        described = await handle.describe()
        progress = await _outbox(stack, outbox)

    assert (held_back.waiting, held_back.pages_in_flight) == (1, 1)
    assert unsent.status not in {"sent", "delivered"}
    # The retrying page finished first; the new run sent what the old one left waiting.
    assert described.run_id != handle.first_execution_run_id
    assert sorted(m.to for m in stack.twilio.messages.values()) == [
        "+8613900139003",
        "+8613900139004",
    ]
    assert progress.counts.get("sent") == 2


async def _retrying_its_first_page(
    stack: Stack, outbox: str, input: OutboxInput, phone: str
) -> tuple[WorkflowHandle[Any, Any], str]:
    """The outbox, started with one page a run: due to continue as new as soon as its first page
    starts, and that page, of one message to ``phone``, waiting on Twilio's retries once it has
    been tried. Returns the outbox and the message."""
    [message_id] = await _composed(stack, phone)
    stack.twilio.faults.failing_numbers = [f"+86{phone}"]
    handle = await stack.env.client.start_workflow(
        PUSH_OUTBOX_WORKFLOW,
        input.model_copy(update={"pages_per_run": 1}),
        id=outbox,
        task_queue=stack.settings.temporal_task_queue,
        start_signal=SIGNAL_PUSHED,
        start_signal_args=[Pushed(message_ids=[message_id])],
    )

    async def tried() -> bool:
        return bool(await stack.attempts(message_id))

    await eventually(tried, what="the page's first try")
    return handle, message_id


async def _composed(stack: Stack, *phones: str) -> list[str]:
    async with transaction(stack.sessions) as session:
        messages = [
            await stack.composer.compose(
                session,
                MessageRequest(
                    key=f"composed-{phone}",
                    template="notice_generic",
                    phone=phone,
                    variables=NOTICE,
                ),
                now=utcnow(),
            )
            for phone in phones
        ]
        await session.flush()
        return [m.id for m in messages]


def _phone(n: int) -> str:
    return f"1390013{n:04d}"
