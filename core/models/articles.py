"""Health education articles as versioned data (ED-5): owned by the platform (shipped, read-only
here), a team (a department) or one person; each version written as a draft, submitted, and
published only once someone other than its author approves it (S0). A pathway pins the version
published when it was."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime
from core.models.base import JSONType, new_id, ts_field, utcnow


class ArticleOwner(StrEnum):
    PLATFORM = "platform"
    TEAM = "team"
    PERSONAL = "personal"


class ArticleStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"  # waiting for approval
    PUBLISHED = "published"
    REJECTED = "rejected"  # back with its author, with the reviewer's note


class ArticleDocument(SQLModel, table=True):
    __tablename__ = "article_document"

    id: str = Field(primary_key=True, max_length=64)
    title: str = Field(max_length=100)
    owner: str = Field(max_length=16)
    department_code: str | None = Field(default=None, max_length=32, index=True)
    owner_staff_id: str | None = Field(default=None, max_length=64)
    published_version: int | None = None
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ArticleVersion(SQLModel, table=True):
    __tablename__ = "article_version"
    __table_args__ = (
        sa.UniqueConstraint("article_id", "version", name="uq_article_version_number"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    article_id: str = Field(foreign_key="article_document.id", index=True, max_length=64)
    version: int
    status: str = Field(default=ArticleStatus.DRAFT, max_length=16)
    body: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    submitted_at: datetime | None = ts_field()
    reviewed_by: str | None = Field(default=None, max_length=64)
    reviewed_at: datetime | None = ts_field()
    review_note: str | None = Field(default=None, max_length=500)
