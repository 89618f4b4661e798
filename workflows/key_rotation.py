"""Data-key rotation (SEC-4): re-encrypts, batch by batch, every value still sealed with an
older key, until a batch finds none.

Each batch is one activity (one transaction) and reports how many rows it rewrote, so a worker
that dies mid-way loses at most the batch in flight, which the retry redoes: a row rewritten
twice is still correct, since a batch only picks rows whose envelope carries another key id.
Continues as new every ``batches_per_run`` batches to keep the history small.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.key_rotation import (
        ACTIVITY_REENCRYPT_BATCH,
        KEY_ROTATION_WORKFLOW,
        QUERY_KEY_ROTATION_PROGRESS,
        KeyRotationInput,
        KeyRotationResult,
        ReencryptBatch,
        ReencryptBatchResult,
    )
    from workflows.retries import KEY_ROTATION_BATCH_TIMEOUT, KEY_ROTATION_RETRY


@workflow.defn(name=KEY_ROTATION_WORKFLOW)
class KeyRotationWorkflow:
    def __init__(self) -> None:
        self._rows = 0
        self._batches = 0

    @workflow.run
    async def run(self, input: KeyRotationInput) -> KeyRotationResult:
        self._rows, self._batches = input.rows_so_far, input.batches_so_far
        in_this_run = 0
        while True:
            if in_this_run >= input.batches_per_run:
                workflow.continue_as_new(
                    input.model_copy(
                        update={"rows_so_far": self._rows, "batches_so_far": self._batches}
                    )
                )
            done: ReencryptBatchResult = await workflow.execute_activity(
                ACTIVITY_REENCRYPT_BATCH,
                ReencryptBatch(batch_size=input.batch_size),
                result_type=ReencryptBatchResult,
                start_to_close_timeout=KEY_ROTATION_BATCH_TIMEOUT,
                retry_policy=KEY_ROTATION_RETRY,
            )
            in_this_run += 1
            self._batches += 1
            self._rows += done.rows
            if done.found == 0:
                return KeyRotationResult(rows=self._rows, batches=self._batches, key_id=done.key_id)

    @workflow.query(name=QUERY_KEY_ROTATION_PROGRESS)
    def progress(self) -> KeyRotationResult:
        return KeyRotationResult(rows=self._rows, batches=self._batches)
