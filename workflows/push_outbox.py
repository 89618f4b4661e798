"""Pushes (MSG-5) gathered and sent many at a time.

A workflow per pushed message cost the machine about 68 ms of CPU per message, most of it the
Temporal server's and the SDK's per-workflow work, not the send (issue 15). The push API now
composes the message, signals its id to one of a few long-running outboxes and commits; an outbox
routes what has arrived in one step and sends it with ``BulkDelivery`` on the channels' single-
message queues. Under load the signals that arrive while pages are in flight form the next page,
so pages grow with the load and an idle outbox sends a lone push at once.

Exactly once holds as for a batch: each message has its row in the send log, reserved before each
try, so a page run again (a worker killed mid-page, a replay) never sends a message twice. An id
signalled twice is queued once.

The API signals before its transaction commits (so that a failed signal leaves nothing behind),
so a page may look for a row that is not visible yet: such an id is looked for again after a
pause, and dropped if it never appears (the push's request failed and its caller was told so).
Messages held by quiet hours wait in the outbox and are routed again when the hours end.

A run continues as new only with no page in flight (a page's sends cannot be handed over), but
new pushes do not wait for that: they go out in pages of their own meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.messages import (
        ACTIVITY_PREPARE_PUSHED,
        PUSH_OUTBOX_WORKFLOW,
        QUERY_OUTBOX,
        SIGNAL_PUSHED,
        HeldPushes,
        OutboxInput,
        OutboxProgress,
        PreparedMessage,
        PreparedPushed,
        PreparePushed,
        Pushed,
    )
    from workflows.bulk_delivery import BulkDelivery
    from workflows.local_steps import database_activity

# Messages per page (routed in one step), and pages in flight at once: a page that waits on a
# channel's retries does not stop the others.
PAGE_SIZE = 200
PAGES_IN_FLIGHT = 4
# Waits before looking again for a row not committed yet; after the last, the id is dropped.
LOOK_AGAIN = (timedelta(seconds=1), timedelta(seconds=5), timedelta(seconds=30))
# A run due to continue as new waits for its pages in flight; a page waiting on a channel's
# retries may take two minutes. Meanwhile new pushes keep going out in pages of their own, an
# urgent one included, until the history reaches the input's `drain_history_events` or this size
# (Temporal warns at 10,240 events or 10 MiB and stops a run at 51,200 or 50 MiB); past them,
# they wait for the new run.
DRAIN_HISTORY_BYTES = 8 * 1024 * 1024
# Runs from before kept every push waiting while they drained.
SENDS_WHILE_DRAINING = "outbox-sends-while-draining"


@workflow.defn(name=PUSH_OUTBOX_WORKFLOW)
class PushOutboxWorkflow:
    @workflow.init
    def __init__(self, input: OutboxInput) -> None:
        self._waiting: list[str] = list(input.waiting)
        self._held: dict[datetime, list[str]] = {}
        for held in input.held:
            self._held.setdefault(held.until, []).extend(held.message_ids)
        self._looks = dict(input.looks)
        self._counts = dict(input.counts)
        self._pages_per_run = input.pages_per_run
        self._drain_history_events = input.drain_history_events
        # Every id waiting, held or in a page in flight: a second signal of one is ignored.
        self._known = set(self._waiting) | {i for ids in self._held.values() for i in ids}
        self._in_flight = 0
        self._bulk = BulkDelivery(self._count, lane="single")

    @workflow.signal(name=SIGNAL_PUSHED)
    def pushed(self, pushed: Pushed) -> None:
        for message_id in pushed.message_ids:
            if message_id not in self._known:
                self._known.add(message_id)
                self._waiting.append(message_id)

    @workflow.query(name=QUERY_OUTBOX)
    def progress(self) -> OutboxProgress:
        return OutboxProgress(
            waiting=len(self._waiting),
            held=sum(map(len, self._held.values())),
            pages_in_flight=self._in_flight,
            counts=dict(self._counts),
        )

    @workflow.run
    async def run(self, input: OutboxInput) -> None:  # noqa: ARG002 - held by __init__
        pages: set[asyncio.Task[None]] = set()
        started = 0
        draining = False
        while True:
            await self._until_work(draining)
            self._release_held()
            if draining and self._in_flight == 0:
                await self._continue_as_new()
            while self._can_start(draining):
                page, self._waiting = self._waiting[:PAGE_SIZE], self._waiting[PAGE_SIZE:]
                self._in_flight += 1
                task = asyncio.ensure_future(self._send_page(page))
                pages.add(task)
                task.add_done_callback(pages.discard)
                started += 1
            if not draining and (
                started >= self._pages_per_run or workflow.info().is_continue_as_new_suggested()
            ):
                if self._in_flight == 0 or not workflow.patched(SENDS_WHILE_DRAINING):
                    await self._continue_as_new()
                draining = True

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(lambda: self._in_flight == 0)
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._release_held()
        workflow.continue_as_new(self._carried())

    def _can_start(self, draining: bool) -> bool:
        if not self._waiting or self._in_flight >= PAGES_IN_FLIGHT:
            return False
        if not draining:
            return True
        info = workflow.info()
        return (
            info.get_current_history_length() < self._drain_history_events
            and info.get_current_history_size() < DRAIN_HISTORY_BYTES
        )

    async def _until_work(self, draining: bool) -> None:
        """Until a page can start, a held message's time comes, or a page holds one sooner; and
        while draining, until the last page in flight is done."""
        earliest = min(self._held, default=None)

        def woken() -> bool:
            return (
                self._can_start(draining)
                or min(self._held, default=None) != earliest
                or (
                    self._in_flight == 0
                    if draining
                    else workflow.info().is_continue_as_new_suggested()
                )
            )

        timeout = None if earliest is None else max(earliest - workflow.now(), timedelta(0))
        with contextlib.suppress(TimeoutError):  # the earliest held message's time has come
            await workflow.wait_condition(woken, timeout=timeout)

    def _release_held(self) -> None:
        now = workflow.now()
        for until in sorted(self._held):
            if until > now:
                break
            self._waiting.extend(self._held.pop(until))

    def _hold(self, until: datetime, message_id: str) -> None:
        self._held.setdefault(until, []).append(message_id)

    def _carried(self) -> OutboxInput:
        return OutboxInput(
            waiting=self._waiting,
            held=[HeldPushes(until=t, message_ids=ids) for t, ids in sorted(self._held.items())],
            looks=self._looks,
            counts=self._counts,
            pages_per_run=self._pages_per_run,
            drain_history_events=self._drain_history_events,
        )

    def _count(self, status: str) -> None:
        self._counts[status] = self._counts.get(status, 0) + 1

    async def _send_page(self, message_ids: list[str]) -> None:
        try:
            prepared: PreparedPushed = await database_activity(
                ACTIVITY_PREPARE_PUSHED,
                PreparePushed(message_ids=message_ids, now=workflow.now()),
                result_type=PreparedPushed,
            )
            now = workflow.now()
            ready: list[PreparedMessage] = []
            settled: list[str] = []
            for message in prepared.messages:
                self._looks.pop(message.message_id, None)
                if message.status != "ready":
                    # "done": sent before, by an earlier page (the id was signalled again).
                    self._count("duplicate" if message.status == "done" else message.status)
                    settled.append(message.message_id)
                elif message.not_before is not None and message.not_before > now:
                    self._hold(message.not_before, message.message_id)
                else:
                    ready.append(message)
            for message_id in prepared.missing:
                self._look_again(message_id, now)
            self._forget(settled)
            await self._bulk.deliver(ready)
            self._forget([m.message_id for m in ready])
        except ActivityError as err:
            # Only an error retrying cannot fix ends a step; the page is tried again later
            # rather than lost, and the send log keeps what it did send from going twice.
            workflow.logger.warning("push page failed, trying again in a minute: %s", err)
            held = {i for ids in self._held.values() for i in ids}
            for message_id in message_ids:
                if message_id in self._known and message_id not in held:
                    self._hold(workflow.now() + timedelta(minutes=1), message_id)
        finally:
            self._in_flight -= 1

    def _look_again(self, message_id: str, now: datetime) -> None:
        looks = self._looks.get(message_id, 0)
        if looks < len(LOOK_AGAIN):
            self._looks[message_id] = looks + 1
            self._hold(now + LOOK_AGAIN[looks], message_id)
            return
        # The push that signalled it never committed (its caller had an error and may retry
        # under the same key, which makes a new message).
        workflow.logger.warning("pushed message %s never appeared; dropped", message_id)
        self._looks.pop(message_id, None)
        self._count("dropped")
        self._forget([message_id])

    def _forget(self, message_ids: list[str]) -> None:
        self._known.difference_update(message_ids)
