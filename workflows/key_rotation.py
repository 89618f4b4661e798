"""Data-key rotation (SEC-4): re-encrypts, batch by batch, every value still sealed with an
older key, until a batch finds none; then seals every uploaded file again, in name order, the
same way (a file already under the current key is left as it is).

Each batch is one activity (one transaction) and reports how many rows it rewrote, so a worker
that dies mid-way loses at most the batch in flight, which the retry redoes: a row rewritten
twice is still correct, since a batch only picks rows whose envelope carries another key id.
Continues as new every ``batches_per_run`` batches to keep the history small.
"""

from __future__ import annotations

from typing import NoReturn

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.key_rotation import (
        ACTIVITY_REENCRYPT_BATCH,
        ACTIVITY_RESEAL_FILES,
        KEY_ROTATION_WORKFLOW,
        QUERY_KEY_ROTATION_PROGRESS,
        KeyRotationInput,
        KeyRotationResult,
        ReencryptBatch,
        ReencryptBatchResult,
        ResealFiles,
        ResealFilesResult,
    )
    from workflows.retries import KEY_ROTATION_BATCH_TIMEOUT, KEY_ROTATION_RETRY


@workflow.defn(name=KEY_ROTATION_WORKFLOW)
class KeyRotationWorkflow:
    def __init__(self) -> None:
        self._rows = 0
        self._batches = 0
        self._files = 0
        self._key_id: str | None = None

    @workflow.run
    async def run(self, input: KeyRotationInput) -> KeyRotationResult:
        self._rows, self._batches = input.rows_so_far, input.batches_so_far
        self._files = input.files_so_far
        in_this_run = 0
        while not input.files_phase:
            if in_this_run >= input.batches_per_run:
                self._continue(input, files_phase=False, after="")
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
            self._key_id = done.key_id
            if done.found == 0:
                if not workflow.patched("reseal-files"):
                    return self._result()
                break
        after = input.files_after
        while True:
            if in_this_run >= input.batches_per_run:
                self._continue(input, files_phase=True, after=after)
            files: ResealFilesResult = await workflow.execute_activity(
                ACTIVITY_RESEAL_FILES,
                ResealFiles(after=after, batch_size=input.batch_size),
                result_type=ResealFilesResult,
                start_to_close_timeout=KEY_ROTATION_BATCH_TIMEOUT,
                retry_policy=KEY_ROTATION_RETRY,
            )
            in_this_run += 1
            self._batches += 1
            self._files += files.files
            self._key_id = files.key_id
            if files.last is None:
                return self._result()
            after = files.last

    def _continue(self, input: KeyRotationInput, *, files_phase: bool, after: str) -> NoReturn:
        workflow.continue_as_new(
            input.model_copy(
                update={
                    "rows_so_far": self._rows,
                    "batches_so_far": self._batches,
                    "files_phase": files_phase,
                    "files_after": after,
                    "files_so_far": self._files,
                }
            )
        )

    def _result(self) -> KeyRotationResult:
        return KeyRotationResult(
            rows=self._rows, batches=self._batches, key_id=self._key_id, files=self._files
        )

    @workflow.query(name=QUERY_KEY_ROTATION_PROGRESS)
    def progress(self) -> KeyRotationResult:
        return KeyRotationResult(rows=self._rows, batches=self._batches)
