"""Pathway definitions as versioned data (drafts, immutable published versions, the live one
for new runs) and case-management enrolment candidates (CM-2)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime
from core.models.base import JSONType, new_id, ts_field, utcnow


class DefinitionStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class Pathway(SQLModel, table=True):
    """A pathway and the version new runs start on."""

    __tablename__ = "pathway"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=100)
    kind: str = Field(max_length=32)
    live_version: int | None = None
    # Whether new runs start: "active", "suspended" (for now; resumable) or "retired" (for
    # good). Runs already started go on either way.
    availability: str = Field(default="active", max_length=16)
    # Shipped with the platform (pathways/library) rather than designed here.
    library: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PathwayVersion(SQLModel, table=True):
    __tablename__ = "pathway_version"
    __table_args__ = (
        sa.UniqueConstraint("pathway_id", "version", name="uq_pathway_version_number"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    pathway_id: str = Field(foreign_key="pathway.id", index=True, max_length=64)
    version: int
    status: str = Field(default=DefinitionStatus.DRAFT, max_length=16)
    # The definition as the designer wrote it (JSON); validated again at publication.
    body: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    # Published only: the definition with its forms and articles, exactly what runs are pinned to.
    snapshot: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    published_by: str | None = Field(default=None, max_length=64)
    published_at: datetime | None = ts_field()


class CandidateStatus(StrEnum):
    PENDING = "pending"
    ENROLLED = "enrolled"
    DECLINED = "declined"


class EnrollmentCandidate(SQLModel, table=True):
    """A patient an HIS event made eligible for a manually enrolled pathway (CM-2)."""

    __tablename__ = "enrollment_candidate"
    __table_args__ = (
        sa.UniqueConstraint(
            "pathway_id", "patient_id", "event_ref", name="uq_enrollment_candidate_event"
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    pathway_id: str = Field(foreign_key="pathway.id", index=True, max_length=64)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=36)
    encounter_id: str | None = Field(default=None, foreign_key="encounter.id", max_length=36)
    # What made the patient eligible: the HIS event id.
    event_ref: str = Field(max_length=128)
    department_code: str = Field(max_length=32, index=True)
    status: str = Field(default=CandidateStatus.PENDING, max_length=16, index=True)
    workflow_id: str | None = Field(default=None, max_length=200)
    # Consent (e-signature reference or scanned form), service package, corrected start date.
    consent: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    start_at: datetime | None = ts_field()
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = ts_field()
    note: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
