"""Review work goes ahead of the rest of a worker process (issue 15, RX-4).

A process's workers share one event loop. When the main queue has a backlog (a burst of messages,
a thousand runs falling due at 10:00) and its worker takes in a task for every slot it has, each
step of a review deadline's conclusion waits its turn behind all of them: 1,000 prescriptions
submitted over a minute reached the HIS up to 32 s after their deadlines. Capping the main worker
for good cost it a third of its throughput on Temporal on PostgreSQL (a slot idles while its task
travels to and from the server), so it narrows only while review tasks are in hand, and widens
again as soon as there are none.

The slot suppliers are called from Temporal's core as well as from the loop, so the counts are
guarded by a lock, and waiting reservations are woken on the loop.
"""

from __future__ import annotations

import asyncio
import threading

from temporalio.worker import (
    CustomSlotSupplier,
    SlotMarkUsedContext,
    SlotPermit,
    SlotReleaseContext,
    SlotReserveContext,
)


class _Permit(SlotPermit):
    def __init__(self) -> None:
        self.used = False


class Precedence:
    """What the review worker has in hand, which the main worker's slots defer to."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.review_in_hand = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None

    def changed(self) -> asyncio.Event:
        """Set whenever a slot is released or review work ends; called on the loop."""
        if self._changed is None:
            self._loop = asyncio.get_running_loop()
            self._changed = asyncio.Event()
        return self._changed

    def notify(self) -> None:
        if self._loop is not None and self._changed is not None:
            self._loop.call_soon_threadsafe(self._changed.set)


class _Slots(CustomSlotSupplier):
    def __init__(self, precedence: Precedence, size: int) -> None:
        self._precedence = precedence
        self._size = size
        self._held = 0

    def _limit(self) -> int:
        return self._size

    def _take(self) -> _Permit | None:
        # Called with the lock held.
        if self._held >= self._limit():
            return None
        self._held += 1
        return _Permit()

    async def reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit:  # noqa: ARG002
        changed = self._precedence.changed()
        while True:
            with self._precedence.lock:
                permit = self._take()
                if permit is not None:
                    return permit
                changed.clear()
            await changed.wait()

    def try_reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit | None:  # noqa: ARG002
        with self._precedence.lock:
            return self._take()

    def mark_slot_used(self, ctx: SlotMarkUsedContext) -> None:
        pass

    def release_slot(self, ctx: SlotReleaseContext) -> None:  # noqa: ARG002
        with self._precedence.lock:
            self._held -= 1
        self._precedence.notify()


class ReviewSlots(_Slots):
    """The review worker's slots: a fixed number, each counted while a task uses it."""

    def mark_slot_used(self, ctx: SlotMarkUsedContext) -> None:
        if isinstance(ctx.permit, _Permit) and not ctx.permit.used:
            ctx.permit.used = True
            with self._precedence.lock:
                self._precedence.review_in_hand += 1

    def release_slot(self, ctx: SlotReleaseContext) -> None:
        with self._precedence.lock:
            self._held -= 1
            if isinstance(ctx.permit, _Permit) and ctx.permit.used:
                self._precedence.review_in_hand -= 1
        self._precedence.notify()


class YieldingSlots(_Slots):
    """The main worker's slots: ``size`` while no review task is in hand, ``narrow`` while one
    is. Slots already taken are not recalled; their tasks take milliseconds."""

    def __init__(self, precedence: Precedence, size: int, narrow: int) -> None:
        super().__init__(precedence, size)
        self._narrow = narrow

    def _limit(self) -> int:
        return self._narrow if self._precedence.review_in_hand else self._size
