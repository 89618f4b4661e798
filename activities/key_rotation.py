"""The data-key rotation's one activity (SEC-4): a batch of rows re-encrypted under the current
key, in one transaction."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.key_rotation import (
    ACTIVITY_REENCRYPT_BATCH,
    UNREADABLE_VALUE,
    ReencryptBatch,
    ReencryptBatchResult,
)
from core.crypto import current_keyring
from core.db import SessionFactory, transaction
from core.logs import get_logger
from services.key_rotation import UnreadableValue, reencrypt_batch

log = get_logger(__name__)


class KeyRotationActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @activity.defn(name=ACTIVITY_REENCRYPT_BATCH)
    async def reencrypt_batch(self, request: ReencryptBatch) -> ReencryptBatchResult:
        # The worker's keyring, configured from its settings: the current key id is the one
        # every row ends up with.
        keyring = current_keyring()
        try:
            async with transaction(self._sessions) as session:
                outcome = await reencrypt_batch(session, keyring, request.batch_size)
        except UnreadableValue as exc:
            raise ApplicationError(str(exc), type=UNREADABLE_VALUE, non_retryable=True) from exc
        if outcome.found:
            log.info(
                "rows re-encrypted",
                found=outcome.found,
                rewritten=outcome.rewritten,
                key_id=keyring.current,
            )
        return ReencryptBatchResult(
            found=outcome.found, rows=outcome.rewritten, key_id=keyring.current
        )
