"""The named retry policies and timeouts keep the values the workflows were recorded with."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.common import RetryPolicy

from workflows import retries

SECOND, MINUTE = timedelta(seconds=1), timedelta(minutes=1)
EXPECTED: dict[str, object] = {
    "DATABASE_TIMEOUT": 30 * SECOND,
    "DATABASE_RETRY": RetryPolicy(initial_interval=SECOND, maximum_interval=MINUTE),
    "KEY_ROTATION_BATCH_TIMEOUT": 2 * MINUTE,
    "KEY_ROTATION_RETRY": RetryPolicy(
        initial_interval=SECOND,
        maximum_interval=MINUTE,
        non_retryable_error_types=["UnreadableEncryptedValue"],
    ),
    "HIS_CALLBACK_TIMEOUT": 30 * SECOND,
    "HIS_CALLBACK_GIVE_UP": timedelta(days=1),
    "HIS_CALLBACK_RETRY": RetryPolicy(initial_interval=SECOND, maximum_interval=5 * MINUTE),
    "ENTERPRISE_TIMEOUT": 30 * SECOND,
    "ENTERPRISE_GIVE_UP": timedelta(hours=12),
    "ENTERPRISE_RETRY": RetryPolicy(
        initial_interval=2 * SECOND,
        maximum_interval=10 * MINUTE,
        non_retryable_error_types=["EnterpriseRefused"],
    ),
    "EXAM_VENDOR_TIMEOUT": 30 * SECOND,
    "EXAM_VENDOR_GIVE_UP": timedelta(days=1),
    "EXAM_VENDOR_RETRY": RetryPolicy(initial_interval=2 * SECOND, maximum_interval=10 * MINUTE),
    "EXAM_DICTIONARY_RETRY": RetryPolicy(initial_interval=5 * SECOND, maximum_interval=30 * MINUTE),
    "IDENTITY_GIVE_UP": timedelta(hours=1),
    "CHANNEL_SEND_TIMEOUT": 20 * SECOND,
    "CHANNEL_SEND_RETRY": RetryPolicy(
        initial_interval=2 * SECOND,
        maximum_interval=30 * SECOND,
        maximum_attempts=8,
        non_retryable_error_types=["PermanentDeliveryFailure"],
    ),
    "BULK_SEND_TIMEOUT": 30 * MINUTE,
    "BULK_SEND_RETRY": RetryPolicy(initial_interval=2 * SECOND, maximum_interval=MINUTE),
    "SAGA_FORWARD_RETRY": RetryPolicy(
        initial_interval=SECOND, maximum_interval=30 * SECOND, non_retryable_error_types=["Refused"]
    ),
    "SAGA_UNTIL_DONE_RETRY": RetryPolicy(
        initial_interval=SECOND, maximum_interval=5 * MINUTE, non_retryable_error_types=["Refused"]
    ),
    "SAGA_POLL_RETRY": RetryPolicy(maximum_attempts=2, non_retryable_error_types=["Refused"]),
    "STATEMENT_TIMEOUT": 5 * MINUTE,
    "STATEMENT_GIVE_UP": timedelta(hours=12),
    "STATEMENT_RETRY": RetryPolicy(initial_interval=30 * SECOND, maximum_interval=30 * MINUTE),
}


def test_every_policy_and_timeout_is_pinned_here() -> None:
    named = {n for n in vars(retries) if n.endswith(("_RETRY", "_TIMEOUT", "_GIVE_UP"))}
    assert named == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_value(name: str) -> None:
    assert getattr(retries, name) == EXPECTED[name]
