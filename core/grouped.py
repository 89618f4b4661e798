"""One call for many requests: what arrives while the previous call runs goes in the next one,
as a database's group commit does. A lone request is served at once; a burst costs one call per
group rather than one per request. Each request waits for its own group's outcome."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupedCalls(Generic[T]):
    """Runs ``action`` with the items submitted while its previous call ran, ``limit`` at most
    at a time, one call after another. Every submitter of a group gets that call's outcome: it
    returns, or raises the call's exception."""

    def __init__(self, action: Callable[[list[T]], Awaitable[None]], *, limit: int) -> None:
        self._action = action
        self._limit = limit
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._running: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._running is None:
            # A context of its own: a group is no more the first submitter's than the others'.
            self._running = asyncio.create_task(self._run(), context=contextvars.Context())
        await done

    async def _run(self) -> None:
        group: list[tuple[T, asyncio.Future[None]]] = []
        try:
            while self._waiting:
                group = self._waiting[: self._limit]
                del self._waiting[: self._limit]
                try:
                    await self._action([item for item, _ in group])
                except Exception as exc:  # noqa: BLE001 - every submitter raises it as its own
                    _answer(group, exc)
                else:
                    _answer(group, None)
                group = []
        finally:
            # Cancelled (the process is stopping): nobody waits for an answer that cannot come.
            for _, done in [*group, *self._waiting]:
                done.cancel()
            self._waiting.clear()
            self._running = None


def _answer(group: list[tuple[T, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, done in group:
        # A submitter that went away (its client hung up) has cancelled its own wait.
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
