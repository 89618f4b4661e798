"""Polling until something is so, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float = 15.0,
    what: str = "condition",
    interval: float = 0.05,
) -> T:
    """Polls ``probe`` until it returns something truthy; fails the test after ``within`` s.

    Waits on an observable condition (a row, a workflow state), never a fixed delay.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await probe()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


async def answers_ok(http: httpx.AsyncClient, url: str) -> bool:
    """Whether ``url`` answers 200 now (a process that is still starting answers nothing)."""
    with contextlib.suppress(httpx.HTTPError):
        return (await http.get(url)).status_code == 200
    return False
