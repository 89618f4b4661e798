"""Files patients upload to answer photo and signature questions: checked against the question,
stripped of the metadata a phone writes into a photo (where and when it was taken), kept
encrypted outside the database (core/file_store.py), and recorded for what they answer (a care
task's form question, a home-nursing order's signature, or an enrolment's signed consent), so a
submission can only name its own files.

The caller commits; a file written for a row that is then not committed is removed with
``discarded_unless_committed``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.crypto import current_keyring
from core.db import insert_if_absent
from core.file_store import EncryptedFiles
from core.images import DamagedImage, normalise_content_type, sniff_image_type, without_metadata
from core.models import Upload, utcnow
from pathways.answers import UPLOAD_REFERENCE, AnswerError, ErrorCode
from pathways.form_definition import UPLOAD_TYPES, FormDefinition, Question

REFERENCE_PREFIX = "upl_"
# Uploads one task may keep for one question, repeats included: a patient retaking a photo a
# few times is normal, filling the disk through one link is not.
MAX_UPLOADS_PER_QUESTION = 20


class UploadRefused(Exception):
    def __init__(self, code: ErrorCode) -> None:
        super().__init__(code)
        self.code: ErrorCode = code


@dataclass(frozen=True)
class StoredUpload:
    reference: str
    content_type: str
    size: int
    # False when the same file was already uploaded for this question: nothing new was written.
    created: bool


@dataclass(frozen=True)
class UploadOwner:
    """What a file answers: a question of a care task's form, of a home-nursing order, or an
    enrolment candidate's informed consent."""

    column: Literal["task_id", "nursing_order_id", "enrollment_candidate_id"]
    id: str

    @classmethod
    def task(cls, task_id: str) -> UploadOwner:
        return cls("task_id", task_id)

    @classmethod
    def nursing_order(cls, order_id: str) -> UploadOwner:
        return cls("nursing_order_id", order_id)

    @classmethod
    def enrolment_candidate(cls, candidate_id: str) -> UploadOwner:
        return cls("enrollment_candidate_id", candidate_id)

    def owns(self) -> ColumnElement[bool]:
        return getattr(Upload, self.column) == self.id  # type: ignore[no-any-return]


def new_reference() -> str:
    reference = REFERENCE_PREFIX + secrets.token_urlsafe(24)
    assert UPLOAD_REFERENCE.match(reference)
    return reference


def accepted_type(question: Question, data: bytes, declared: str | None) -> str:
    """The file's content type when the question takes it; UploadRefused naming why not.

    Both must hold: the type the browser declared is one the question accepts, and the bytes
    are really that image."""
    if question.type not in UPLOAD_TYPES:
        raise UploadRefused("not_answerable")
    if not data:
        raise UploadRefused("empty_file")
    if len(data) > (question.max_bytes or 0):
        raise UploadRefused("file_too_large")
    sniffed = sniff_image_type(data)
    declared_type = normalise_content_type(declared)
    if declared_type not in question.content_types:
        raise UploadRefused(
            "file_type_not_accepted" if sniffed or declared_type else "not_an_image"
        )
    if sniffed is None:
        raise UploadRefused("not_an_image")
    if sniffed != declared_type:
        raise UploadRefused("file_type_mismatch")
    return sniffed


async def store_upload(
    session: AsyncSession,
    files: EncryptedFiles,
    *,
    owner: UploadOwner,
    question: Question,
    data: bytes,
    declared_type: str | None,
) -> StoredUpload:
    content_type = accepted_type(question, data, declared_type)
    try:
        data = without_metadata(data, content_type)
    except DamagedImage:
        raise UploadRefused("damaged_image") from None
    digest = current_keyring().blind_digest("upload", data)
    found = await _same_file(session, owner, question.id, digest)
    if found is not None:
        return StoredUpload(found.reference, found.content_type, found.size, created=False)
    kept = await session.exec(
        select(func.count())
        .select_from(Upload)
        .where(owner.owns(), Upload.question_id == question.id)
    )
    if kept.one() >= MAX_UPLOADS_PER_QUESTION:
        raise UploadRefused("too_many_files")
    reference = new_reference()
    await asyncio.to_thread(files.write, reference, data)
    values = {
        "reference": reference,
        owner.column: owner.id,
        "question_id": question.id,
        "content_type": content_type,
        "size": len(data),
        "digest": digest,
        "created_at": utcnow(),
    }
    row: Upload | None = None
    try:
        await insert_if_absent(
            session,
            Upload.__table__,  # type: ignore[attr-defined]
            values,
            [owner.column, "question_id", "digest"],
        )
        row = await _same_file(session, owner, question.id, digest)
    finally:
        if row is None or row.reference != reference:
            files.remove(reference)
    assert row is not None
    # A double tap: the other request stored the same file first, and its row is the one.
    return StoredUpload(row.reference, row.content_type, row.size, row.reference == reference)


async def _same_file(
    session: AsyncSession, owner: UploadOwner, question_id: str, digest: str
) -> Upload | None:
    rows = await session.exec(
        select(Upload).where(
            owner.owns(), Upload.question_id == question_id, Upload.digest == digest
        )
    )
    return rows.first()


@contextmanager
def discarded_unless_committed(
    files: EncryptedFiles, stored: Sequence[StoredUpload]
) -> Iterator[None]:
    """Removes the files written for ``stored`` when the block (the commit) does not finish:
    a failed request leaves neither a row nor a file."""
    finished = False
    try:
        yield
        finished = True
    finally:
        if not finished:
            for upload in stored:
                if upload.created:
                    files.remove(upload.reference)


async def owned_references(
    session: AsyncSession, task_id: str, references: Sequence[str]
) -> dict[str, str]:
    """Of these references, those uploaded for this task, each with its question id."""
    wanted = sorted({r for r in references if UPLOAD_REFERENCE.match(r)})
    if not wanted:
        return {}
    rows = await session.exec(
        select(Upload.reference, Upload.question_id).where(
            Upload.task_id == task_id, col(Upload.reference).in_(wanted)
        )
    )
    return dict(rows.all())


async def foreign_references(
    session: AsyncSession, task_id: str, form: FormDefinition, answers: Mapping[str, Sequence[str]]
) -> list[AnswerError]:
    """not_an_upload at each photo or signature answered with a reference that was not
    uploaded for this task and this question."""
    questions = [q for q in form.questions if q.type in UPLOAD_TYPES and answers.get(q.id)]
    owned = await owned_references(session, task_id, [r for q in questions for r in answers[q.id]])
    return [
        AnswerError(q.id, "not_an_upload")
        for q in questions
        if any(owned.get(r) != q.id for r in answers[q.id])
    ]


async def find_upload(session: AsyncSession, reference: str) -> Upload | None:
    if not UPLOAD_REFERENCE.match(reference):
        return None
    return await session.get(Upload, reference)
