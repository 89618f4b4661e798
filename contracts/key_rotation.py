"""The data-key rotation job (SEC-4): re-encrypts every encrypted column still sealed with an
older key under the current one, in batches, until none is left; then seals every uploaded
file again the same way.

Plain pydantic models shared by the workflow, its activity and whoever starts it. No I/O.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

KEY_ROTATION_WORKFLOW = "KeyRotation"
ACTIVITY_REENCRYPT_BATCH = "key_rotation.reencrypt_batch"
ACTIVITY_RESEAL_FILES = "key_rotation.reseal_files"
QUERY_KEY_ROTATION_PROGRESS = "progress"
# One rotation at a time: starting it again while it runs joins the running one.
KEY_ROTATION_WORKFLOW_ID = "key-rotation"
# Error type of a value that no configured key opens: retrying cannot fix it.
UNREADABLE_VALUE = "UnreadableEncryptedValue"


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True)


class KeyRotationInput(_Msg):
    # Rows re-encrypted per activity (one transaction each).
    batch_size: int = Field(default=200, ge=1, le=5000)
    # Continue-as-new after this many batches, so the history stays small on big tables.
    batches_per_run: int = Field(default=100, ge=1, le=1000)
    # Carried over continue-as-new.
    rows_so_far: int = Field(default=0, ge=0)
    batches_so_far: int = Field(default=0, ge=0)
    # The uploaded files, once the rows are done: resealed in name order, after this name.
    files_phase: bool = False
    files_after: str = ""
    files_so_far: int = Field(default=0, ge=0)


class ReencryptBatch(_Msg):
    batch_size: int = Field(ge=1, le=5000)


class ReencryptBatchResult(_Msg):
    # Rows found still holding a value under an older key; 0 means nothing is left.
    found: int
    # Of them, rows rewritten under the current key (a row the application changed meanwhile
    # is left for the next batch).
    rows: int
    # The key id they now carry (the worker's current key).
    key_id: str


class ResealFiles(_Msg):
    after: str
    batch_size: int = Field(ge=1, le=5000)


class ResealFilesResult(_Msg):
    # The last file name looked at; None when no file is left after ``after``.
    last: str | None
    # Of them, files sealed again under the current key.
    files: int
    key_id: str


class KeyRotationResult(_Msg):
    rows: int
    batches: int
    key_id: str | None = None
    files: int = 0
