"""Keeps the time-skipping server's clock free when child workflows outlive their parents.

The Java test server locks its clock while a closing child tells its parent, and unlocks it
when the parent takes the notice. A parent that has already closed refuses the notice, and the
lock is never released (seen on io.temporal:temporal-test-server 1.38.0; ``childWorkflow*`` in
TestWorkflowMutableStateImpl). Here that is the everyday case: a saga or an order starts a
message delivery as an abandoned child and ends before the message is delivered. From then on
time no longer skips and every timer waits the real duration.

``releasing_leaked_locks`` watches for exactly that footprint (a closed child still listed as
pending by its closed parent) and releases one lock per such child, once. It is a workaround for
the server, not a way to wait: tests still wait on what they assert.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlmodel import select
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from contracts.messages import delivery_workflow_id
from core.db import SessionFactory
from core.models import OutboundMessage

T = TypeVar("T")

Candidates = Callable[[], Awaitable[Iterable[str]]]

# How often the watch looks again; a leaked lock only costs time until it is released.
SCAN_EVERY_SECONDS = 0.2


class LeakedLocks:
    def __init__(self, client: Client, candidates: Candidates) -> None:
        self._client = client
        self._candidates = candidates
        self.released: set[str] = set()

    async def release(self) -> int:
        """Releases the lock each newly found orphaned child leaked; returns how many."""
        found = 0
        for child_id in await self._candidates():
            if child_id not in self.released and await self._leaked(child_id):
                await self._client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
                self.released.add(child_id)
                found += 1
        return found

    async def _leaked(self, child_id: str) -> bool:
        try:
            child = await self._client.get_workflow_handle(child_id).describe()
        except RPCError:
            return False  # not started yet
        if child.status == WorkflowExecutionStatus.RUNNING or child.parent_id is None:
            return False
        parent = await self._client.get_workflow_handle(
            child.parent_id, run_id=child.parent_run_id
        ).describe()
        if parent.status == WorkflowExecutionStatus.RUNNING:
            return False
        pending = parent.raw_description.pending_children
        return any(c.workflow_id == child_id for c in pending)


def message_deliveries(sessions: SessionFactory) -> Candidates:
    """Every message's delivery workflow: the children sagas and orders leave running."""

    async def ids() -> list[str]:
        async with sessions() as session:
            keys = (await session.exec(select(OutboundMessage.idempotency_key))).all()
        return [delivery_workflow_id(key) for key in keys]

    return ids


@asynccontextmanager
async def releasing_leaked_locks(
    client: Client, candidates: Candidates
) -> AsyncIterator[LeakedLocks]:
    """While open, releases the locks leaked by any of ``candidates()`` (workflow ids that may
    be started as children their parents abandon)."""
    locks = LeakedLocks(client, candidates)

    async def watch() -> None:
        while True:
            await locks.release()
            await asyncio.sleep(SCAN_EVERY_SECONDS)

    watcher = asyncio.create_task(watch())
    try:
        yield locks
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def result_skipping_time(client: Client, handle: WorkflowHandle[Any, T]) -> T:
    """Waits for a run's result with the clock free, as the SDK does only for a run the test's
    client started itself (here the API starts them)."""
    await client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
    try:
        return await handle.result()
    finally:
        await client.test_service.lock_time_skipping(LockTimeSkippingRequest())
