"""Worker process: ``python -m workers.main``. Stops cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from core.db import create_engine, session_factory
from core.logs import configure_logging, get_logger
from core.settings import get_settings
from core.temporal import connect_temporal
from integrations.temporal_search import ensure_registered
from services.reconciliation import ensure_reconciliation_schedule
from workers.factory import WorkerDeps, build_workers, running_workers

log = get_logger("workers")


async def main() -> None:
    settings = get_settings()
    configure_logging(json=settings.json_logs, level=settings.log_level)
    engine = create_engine(settings.database_url, echo=settings.database_echo)
    client = await connect_temporal(settings)
    await ensure_registered(client, settings.temporal_namespace)
    deps = WorkerDeps.from_settings(
        settings, session_factory(engine, audit_key=settings.audit_key.get_secret_value())
    )
    workers = build_workers(client, settings.temporal_task_queue, deps)
    await ensure_reconciliation_schedule(client, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker started",
        task_queue=settings.temporal_task_queue,
        channels=list(deps.channels),
    )
    try:
        async with running_workers(workers):
            await stop.wait()
            log.info("worker stopping")
    finally:
        await deps.close()
        await engine.dispose()
    log.info("worker stopped")


if __name__ == "__main__":
    asyncio.run(main())
