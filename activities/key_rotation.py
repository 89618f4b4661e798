"""The data-key rotation's activities (SEC-4): a batch of rows re-encrypted under the current
key, in one transaction; a batch of uploaded files sealed again under it."""

from __future__ import annotations

import asyncio

from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.key_rotation import (
    ACTIVITY_REENCRYPT_BATCH,
    ACTIVITY_RESEAL_FILES,
    UNREADABLE_VALUE,
    ReencryptBatch,
    ReencryptBatchResult,
    ResealFiles,
    ResealFilesResult,
)
from core.crypto import CryptoError, current_keyring
from core.db import SessionFactory, transaction
from core.file_store import EncryptedFiles
from core.logs import get_logger
from core.models import Upload
from services.key_rotation import UnreadableValue, reencrypt_batch

log = get_logger(__name__)


class KeyRotationActivities:
    def __init__(self, sessions: SessionFactory, files: EncryptedFiles) -> None:
        self._sessions = sessions
        self._files = files

    @activity.defn(name=ACTIVITY_RESEAL_FILES)
    async def reseal_files(self, request: ResealFiles) -> ResealFilesResult:
        async with self._sessions() as session:
            names = (
                await session.exec(
                    select(Upload.reference)
                    .where(col(Upload.reference) > request.after)
                    .order_by(col(Upload.reference))
                    .limit(request.batch_size)
                )
            ).all()
        resealed = 0
        for name in names:
            try:
                resealed += await asyncio.to_thread(self._files.reseal, name)
            except FileNotFoundError:
                # Recorded, never written to disk (a crash in between): nothing to reseal.
                log.warning("uploaded file missing", reference=name)
            except CryptoError as exc:
                raise ApplicationError(
                    f"uploaded file {name}: {exc}", type=UNREADABLE_VALUE, non_retryable=True
                ) from exc
        key_id = current_keyring().current
        if resealed:
            log.info("files resealed", files=resealed, key_id=key_id)
        return ResealFilesResult(last=names[-1] if names else None, files=resealed, key_id=key_id)

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
