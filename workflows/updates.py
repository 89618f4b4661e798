"""What every workflow with updates and deadlines shares: an update refused with the reason the
caller sees (the run goes on untouched), and a wait for a condition that gives up at a
deadline."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError


class UpdateRejected(ApplicationError):
    """An update that does not apply; the caller gets the message, the run goes on untouched."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="UpdateRejected", non_retryable=True)


@contextlib.contextmanager
def refused_as_rejected(refusal: type[Exception]) -> Iterator[None]:
    """A domain rule's refusal, as the update's rejection (the same message, nothing more)."""
    try:
        yield
    except refusal as refused:
        raise UpdateRejected(str(refused)) from None


async def wait_for(condition: Callable[[], object], within: timedelta) -> bool:
    """Waits for ``condition`` up to ``within``; False when the time ran out first. A condition
    already true starts no timer."""
    if condition():
        return True
    if within <= timedelta(0):
        return False
    try:
        await workflow.wait_condition(lambda: bool(condition()), timeout=within)
    except TimeoutError:
        return False
    return True
