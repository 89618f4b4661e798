"""Every workflow's activity retry policies and timeouts, named for the calls they govern.

Deterministic; no I/O. The payment sagas' call timeouts are the hospital's (``PaymentPolicy``)
and stay with the saga steps (workflows/saga_steps.py).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts.key_rotation import UNREADABLE_VALUE

    # Shared with the activity that bounds each message of a bulk send by it; pinned here too.
    from contracts.messages import CHANNEL_SEND_TIMEOUT as CHANNEL_SEND_TIMEOUT
    from contracts.messages import PERMANENT_DELIVERY_FAILURE
    from contracts.payment import REFUSED

# Our own database (projections, records, audit, pages of recipients): an outage delays the
# work, it never loses it.
DATABASE_TIMEOUT = timedelta(seconds=30)
DATABASE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)

# One batch of the data-key rotation (SEC-4): a database transaction like the above, except
# that a value no configured key opens stops the job (someone removed a key too early).
KEY_ROTATION_BATCH_TIMEOUT = timedelta(minutes=2)
KEY_ROTATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=[UNREADABLE_VALUE],
)

# Calls back to the HIS (a pathway's HIS event, a prescription's status callback): retried
# with backoff for a day, then recorded as failed.
HIS_CALLBACK_TIMEOUT = timedelta(seconds=30)
HIS_CALLBACK_GIVE_UP = timedelta(days=1)
HIS_CALLBACK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)

# A prescription's service enterprise (dispatch, cancelling the order); a refusal is final.
ENTERPRISE_TIMEOUT = timedelta(seconds=30)
ENTERPRISE_GIVE_UP = timedelta(hours=12)
ENTERPRISE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=["EnterpriseRefused"],
)

# The exam vendor's booking interface (US-K2): unavailable, retried with backoff for a day;
# a refusal (202) is an answer, not an error.
EXAM_VENDOR_TIMEOUT = timedelta(seconds=30)
EXAM_VENDOR_GIVE_UP = timedelta(days=1)
EXAM_VENDOR_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
# A vendor dictionary change that could not be saved (US-H5, 701): retried until it is.
EXAM_DICTIONARY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=30),
)

# The real-name identity service (home nursing): retried while unavailable, for an hour.
IDENTITY_GIVE_UP = timedelta(hours=1)

# A provider call sending one message on one channel: short, so a worker that dies mid-send is
# retried quickly. Transient failures (5xx, timeouts) are retried with backoff for about two
# minutes (a try whose answer was lost may first spend a few waiting for WeChat's report of it),
# then the next channel is tried; a permanent one (invalid number, user blocked the account)
# moves on at once. Each try has CHANNEL_SEND_TIMEOUT.
CHANNEL_SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
    non_retryable_error_types=[PERMANENT_DELIVERY_FAILURE],
)

# Many messages on one channel (a batch page): each message's transient failures are tried again
# by the workflow on CHANNEL_SEND_RETRY's schedule; the activity itself fails only when it could
# not run (its worker died, the database is down), and is then retried until it runs. Paced at
# the channel's rate, it may take minutes; a live one heartbeats after every message.
BULK_SEND_TIMEOUT = timedelta(minutes=30)
BULK_SEND_HEARTBEAT = CHANNEL_SEND_TIMEOUT
BULK_SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)

# Payment saga steps (their timeouts come from the hospital's PaymentPolicy):
# a forward step runs until its deadline and fails the saga on a refusal;
SAGA_FORWARD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[REFUSED],
)
# a compensation or post-money step never gives up by itself, only a refusal stops it;
SAGA_UNTIL_DONE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=[REFUSED],
)
# a status poll is tried twice: its failure only means "ask again later".
SAGA_POLL_RETRY = RetryPolicy(maximum_attempts=2, non_retryable_error_types=[REFUSED])

# The payment provider's daily trade bill: it may not be published yet, or the provider may be
# down, so it is retried with a long backoff for most of a day.
STATEMENT_TIMEOUT = timedelta(minutes=5)
STATEMENT_GIVE_UP = timedelta(hours=12)
STATEMENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=30),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=30),
)
