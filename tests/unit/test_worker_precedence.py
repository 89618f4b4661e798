"""The main worker makes way for review work in the same process (workers/precedence.py); the
deadline figures are in bench.prescription_autoapproval, the behaviour end to end in
tests/prescriptions/test_review.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

from temporalio.worker import SlotMarkUsedContext, SlotPermit, SlotReleaseContext

from workers.precedence import Precedence, ReviewSlots, YieldingSlots

CTX: Any = object()  # the suppliers do not look at the reservation's context


@dataclass(frozen=True)
class _Used:
    slot_info: Any
    permit: SlotPermit


def used(permit: SlotPermit) -> SlotMarkUsedContext:
    return cast(SlotMarkUsedContext, _Used(slot_info=None, permit=permit))


def released(permit: SlotPermit) -> SlotReleaseContext:
    return SlotReleaseContext(slot_info=None, permit=permit)


async def test_the_main_worker_narrows_while_a_review_task_is_in_hand() -> None:
    precedence = Precedence()
    review, main = ReviewSlots(precedence, 10), YieldingSlots(precedence, 10, narrow=2)
    held = [await main.reserve_slot(CTX) for _ in range(2)]
    # A review poller holding a slot with no task yet narrows nothing.
    polling = await review.reserve_slot(CTX)
    assert main.try_reserve_slot(CTX) is not None
    main.release_slot(released(held.pop()))

    review.mark_slot_used(used(polling))
    assert main.try_reserve_slot(CTX) is None
    waiting = asyncio.create_task(main.reserve_slot(CTX))
    await asyncio.sleep(0)  # one pass of the loop: the reservation runs until it waits
    assert not waiting.done()

    review.release_slot(released(polling))
    assert isinstance(await asyncio.wait_for(waiting, 5), SlotPermit)
    # Widened again: the main worker takes as many as it has.
    assert all(main.try_reserve_slot(CTX) is not None for _ in range(7))
    assert main.try_reserve_slot(CTX) is None


async def test_the_review_worker_never_waits_for_the_main_one() -> None:
    precedence = Precedence()
    review, main = ReviewSlots(precedence, 3), YieldingSlots(precedence, 10, narrow=2)
    assert all(main.try_reserve_slot(CTX) is not None for _ in range(10))
    permits = [await review.reserve_slot(CTX) for _ in range(3)]
    for permit in permits:
        review.mark_slot_used(used(permit))
        review.mark_slot_used(used(permit))  # marked twice, counted once
    assert review.try_reserve_slot(CTX) is None
    for permit in permits:
        review.release_slot(released(permit))
    assert precedence.review_in_hand == 0
    assert review.try_reserve_slot(CTX) is not None
