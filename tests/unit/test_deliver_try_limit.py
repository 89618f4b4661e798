"""A single message's try ends before its activity times out. Temporal retries a timed-out try
without telling it, so a try still waiting on the provider then would send the message a second
time, beside its retry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.messaging import MessagingActivities, _Reserved
from contracts.messages import DeliverAttempt
from messaging.channel import DeliveryReceipt, OutgoingMessage


class _Unanswered:
    """A provider that takes a send and never answers."""

    name = "sms"
    reports_sends_within = None

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.abandoned = False

    async def deliver(self, message: OutgoingMessage) -> DeliveryReceipt:
        self.reached.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.abandoned = True
            raise
        raise AssertionError("unreachable")


async def test_a_try_past_its_limit_fails_as_transient_and_stops_sending() -> None:
    provider = _Unanswered()
    activities = MessagingActivities(
        sessions=cast(Any, None),
        composer=cast(Any, None),
        channels={"sms": cast(Any, provider)},
        enabled=["sms"],
        try_limit=timedelta(seconds=0.2),
    )

    async def reserved(*_: object) -> _Reserved:
        # A first try, reserved in the send log (not under test here).
        return _Reserved(
            draft=cast(OutgoingMessage, None),
            attempt_id="attempt-1",
            at=datetime.now(UTC),
            uncertain=False,
            refused_before=False,
        )

    activities._reserve_waiting = reserved  # type: ignore[method-assign,assignment]
    attempt = DeliverAttempt(message_id="m-1", channel="sms", now=datetime.now(UTC), record=False)

    with pytest.raises(ApplicationError) as failed:
        async with asyncio.timeout(5):  # a guard: unbounded, the try would wait forever
            await ActivityEnvironment().run(activities.deliver, attempt)

    assert provider.reached.is_set()
    # Failed as a lost answer does: retryable, and the retry reconciles before sending again.
    assert not failed.value.non_retryable
    assert failed.value.type == "TransientDeliveryFailure"
    assert "发送超时" in failed.value.message
    # The try itself is over: nothing of it is left to send once its retry has started.
    assert provider.abandoned
