"""Grouped calls (core.grouped): what arrives while a call runs goes in the next one, each
submitter hears its own group's outcome, and one that hangs up does not stop the others."""

from __future__ import annotations

import asyncio

import pytest

from core.grouped import GroupedCalls


class Held:
    """An action that records each group and waits for the test to let each call finish."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.groups: list[list[str]] = []
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.fail_on = fail_on

    async def __call__(self, items: list[str]) -> None:
        self.groups.append(items)
        self.entered.set()
        await self.release.wait()
        if self.fail_on in items:
            raise ConnectionResetError(f"failed with {self.fail_on}")


async def _during_a_call(
    calls: GroupedCalls[str], action: Held, items: str
) -> tuple[asyncio.Task[None], list[asyncio.Task[None]]]:
    """Submits "a", and once its call is under way each of ``items``; the call is held."""
    first = asyncio.create_task(calls("a"))
    await action.entered.wait()
    rest = [asyncio.create_task(calls(item)) for item in items]
    await asyncio.sleep(0)  # one turn of the loop, not a wait: each runs up to its queueing
    return first, rest


async def test_what_arrives_during_a_call_goes_together_in_the_next() -> None:
    action = Held()
    calls = GroupedCalls(action, limit=10)
    first, rest = await _during_a_call(calls, action, "bcd")

    assert not first.done()
    action.release.set()
    await asyncio.gather(first, *rest)

    assert action.groups == [["a"], ["b", "c", "d"]]


async def test_a_group_larger_than_the_limit_is_split() -> None:
    action = Held()
    calls = GroupedCalls(action, limit=2)
    first, rest = await _during_a_call(calls, action, "bcde")
    action.release.set()
    await asyncio.gather(first, *rest)

    assert action.groups == [["a"], ["b", "c"], ["d", "e"]]


async def test_a_failed_call_fails_its_own_group_only() -> None:
    action = Held(fail_on="b")
    calls = GroupedCalls(action, limit=10)
    first, failing = await _during_a_call(calls, action, "bc")
    action.release.set()
    await first
    outcomes = await asyncio.gather(*failing, return_exceptions=True)
    await calls("d")

    assert [type(o) for o in outcomes] == [ConnectionResetError, ConnectionResetError]
    assert action.groups == [["a"], ["b", "c"], ["d"]]


async def test_a_submitter_that_hangs_up_does_not_stop_its_group() -> None:
    action = Held()
    calls = GroupedCalls(action, limit=10)
    first, (leaving, staying) = await _during_a_call(calls, action, "bc")
    leaving.cancel()
    action.release.set()
    await asyncio.gather(first, staying)

    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert action.groups == [["a"], ["b", "c"]]
