"""Files patients uploaded: photos and signatures answering a care task's form, and the signature
confirming a home-nursing visit. The bytes are kept outside the database, encrypted
(core/file_store.py); the row says what they are and what for."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime
from core.models.base import utcnow


class Upload(SQLModel, table=True):
    __tablename__ = "upload"
    # The same bytes for the same question of the same task are one upload: a double tap, or a
    # page posted again, finds the first instead of storing a copy.
    __table_args__ = (
        sa.UniqueConstraint("task_id", "question_id", "digest", name="uq_upload_content"),
        sa.UniqueConstraint(
            "nursing_order_id", "question_id", "digest", name="uq_upload_nursing_content"
        ),
        sa.UniqueConstraint(
            "enrollment_candidate_id", "question_id", "digest", name="uq_upload_consent_content"
        ),
        # Every file answers exactly one thing.
        sa.CheckConstraint(
            "(CASE WHEN task_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN nursing_order_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN enrollment_candidate_id IS NULL THEN 0 ELSE 1 END) = 1",
            name="one_owner",
        ),
    )

    # "upl_" and 32 random URL-safe characters: what answers hold and the file's name on disk.
    reference: str = Field(primary_key=True, max_length=36)
    task_id: str | None = Field(default=None, foreign_key="care_task.id", max_length=36)
    nursing_order_id: str | None = Field(
        default=None, foreign_key="nursing_order.id", max_length=36, index=True
    )
    # A patient's signed informed consent to a manually enrolled pathway (CM-2).
    enrollment_candidate_id: str | None = Field(
        default=None, foreign_key="enrollment_candidate.id", max_length=36, index=True
    )
    question_id: str = Field(max_length=64)
    content_type: str = Field(max_length=32)
    size: int
    # HMAC-SM3 of the bytes under the blind index key: finds a repeat without letting whoever
    # holds a photo confirm it is stored here.
    digest: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
