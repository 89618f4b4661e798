"""Forms as versioned data (FORM-1): a designer's drafts and immutable published versions, and
the library forms shipped with the platform, stored the same way. A pathway pins the version it
was published with (its snapshot holds that version's definition)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime
from core.models.base import JSONType, new_id, ts_field, utcnow
from core.models.pathways import DefinitionStatus


class FormDocument(SQLModel, table=True):
    """A form and where it belongs: a department and ward, or the whole hospital (None)."""

    __tablename__ = "form_document"

    id: str = Field(primary_key=True, max_length=64)
    title: str = Field(max_length=100)
    department_code: str | None = Field(default=None, max_length=32, index=True)
    ward: str | None = Field(default=None, max_length=32)
    # The newest published version: what a pathway published from now on pins.
    published_version: int | None = None
    # Shipped with the platform (pathways/forms); changed only by a release.
    library: bool = False
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FormVersion(SQLModel, table=True):
    __tablename__ = "form_version"
    __table_args__ = (sa.UniqueConstraint("form_id", "version", name="uq_form_version_number"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    form_id: str = Field(foreign_key="form_document.id", index=True, max_length=64)
    version: int
    status: str = Field(default=DefinitionStatus.DRAFT, max_length=16)
    # The definition as the designer wrote it, its "version" set to this row's.
    body: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    published_by: str | None = Field(default=None, max_length=64)
    published_at: datetime | None = ts_field()
