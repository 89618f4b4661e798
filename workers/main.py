"""Worker process: ``python -m workers.main [--queues all|main|review]``. Stops cleanly on
SIGINT/SIGTERM.

``all`` (the default) serves every task queue. Production runs ``review`` in a process of its
own next to the ``main`` ones, as ``make run`` does: a prescription's review deadline then never
waits for an event loop crowded by a burst of messages or runs falling due (RX-4).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

import uvloop

from core.db import create_engine, session_factory
from core.logs import configure_logging, get_logger
from core.settings import get_settings
from core.temporal import connect_temporal
from integrations.temporal_search import ensure_registered
from services.reconciliation import ensure_reconciliation_schedule
from workers.factory import Queues, WorkerDeps, build_workers, running_workers

log = get_logger("workers")


async def main(queues: Queues = Queues.ALL) -> None:
    settings = get_settings()
    configure_logging(json=settings.json_logs, level=settings.log_level)
    if queues == Queues.MAIN:
        os.nice(settings.worker_main_niceness)
    engine = create_engine(settings.database_url, echo=settings.database_echo)
    client = await connect_temporal(settings)
    await ensure_registered(client, settings.temporal_namespace)
    deps = WorkerDeps.from_settings(
        settings,
        session_factory(engine, audit_key=settings.audit_key.get_secret_value()),
        # A review process sends no messages: no channel clients to open.
        channels={} if queues == Queues.REVIEW else None,
    )
    workers = build_workers(client, settings.temporal_task_queue, deps, queues=queues)
    if queues != Queues.REVIEW:
        await ensure_reconciliation_schedule(client, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker started",
        task_queue=settings.temporal_task_queue,
        queues=queues.value,
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


def run(queues: Queues = Queues.ALL) -> None:
    # uvloop, as the API runs on (uvicorn picks it): its sockets cost a busy worker, sending a
    # batch page's messages and its database round trips, noticeably less CPU than asyncio's.
    uvloop.run(main(queues))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m workers.main")
    parser.add_argument("--queues", type=Queues, choices=list(Queues), default=Queues.ALL)
    run(parser.parse_args().queues)
