"""The platform's workers, run in the caller's process on its own task queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.client import Client
from temporalio.worker import Worker

from core.db import SessionFactory
from core.settings import Settings
from messaging.channel import MessageChannel
from workers.factory import WorkerDeps, build_workers, running_workers


@asynccontextmanager
async def running_worker(
    client: Client,
    task_queue: str,
    settings: Settings,
    sessions: SessionFactory,
    *,
    max_cached_workflows: int = 1000,
    channels: dict[str, MessageChannel] | None = None,
) -> AsyncIterator[list[Worker]]:
    """The platform's workers (main + one per channel) for one test's task queue."""
    deps = WorkerDeps.from_settings(settings, sessions, channels)
    workers = build_workers(client, task_queue, deps, max_cached_workflows=max_cached_workflows)
    try:
        async with running_workers(workers):
            yield workers
    finally:
        await deps.close()
