"""Serving an ASGI app on a loopback port inside the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from harness.postgres import free_port


@asynccontextmanager
async def serve(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    started = asyncio.Event()

    async def watch() -> None:
        while not server.started:
            if task.done():
                return
            await asyncio.sleep(0.01)
        started.set()

    await asyncio.wait_for(watch(), timeout=10)
    if not started.is_set():
        await task  # surfaces the start-up error
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
