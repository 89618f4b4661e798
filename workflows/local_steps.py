"""Steps that only reach the worker's own resources run as local activities: writes to our own
database (projections, the send log, a run's record) and checks computed from rules.

Each such step is short: one transaction on the worker's own pool, or no I/O at all. As a
regular activity it also costs the Temporal server an activity task to store and dispatch and one
more workflow task to resume the run; on 2 cores that server work, not the SQL, bounded messages
and runs per second (issue 15). A local activity runs inside the workflow task that asks for it
and leaves one marker in the history, without its input (a run's opening no longer stores its
plan snapshot twice).

Guarantees are unchanged: the same retry policy (an outage delays the step, never loses it;
after a minute the SDK backs off on server timers), and each step stays idempotent because a
worker that dies mid-task runs it again. What it gives up: the workflow task is held while the
step runs, so a command issued in the same task leaves only when the step is done. Steps on a
deadline's path (a prescription's conclusion) therefore stay regular activities.

Runs started before this change keep regular activities: ``workflow.patched`` answers False for
their histories, and its answer holds for the rest of the run.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.retries import DATABASE_RETRY, DATABASE_TIMEOUT

LOCAL_DATABASE_STEPS = "local-database-steps"


async def database_activity(activity: str, arg: Any, result_type: type | None = None) -> Any:
    """The same step as a regular activity, for runs from before and for steps on a deadline's
    path."""
    return await workflow.execute_activity(
        activity,
        arg,
        result_type=result_type,
        start_to_close_timeout=DATABASE_TIMEOUT,
        retry_policy=DATABASE_RETRY,
    )


async def local_step(activity: str, arg: Any, result_type: type | None = None) -> Any:
    if workflow.patched(LOCAL_DATABASE_STEPS):
        return await workflow.execute_local_activity(
            activity,
            arg,
            result_type=result_type,
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
            # As a regular activity a cancelled step still finished its write (these steps never
            # heartbeat, so never hear of it); abandoning keeps that: a run that ends while a
            # projection is being written leaves the projection written.
            cancellation_type=workflow.ActivityCancellationType.ABANDON,
        )
    return await database_activity(activity, arg, result_type)
