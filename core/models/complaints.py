"""Complaints and praise (SAT-3): one row per case, the projection of its workflow (which holds
the truth: its timers, its steps). The patient's words, the outcome and every note are free text
and encrypted at rest."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.crypto import EncryptedJSON, EncryptedText
from core.db import UTCDateTime
from core.models.base import new_id, ts_field, utcnow


class Complaint(SQLModel, table=True):
    __tablename__ = "complaint"
    __table_args__ = (sa.Index("ix_complaint_queue", "department_code", "status"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    # What staff and the patient quote: TS20261125-3F9A1C.
    case_no: str = Field(max_length=32, unique=True)
    workflow_id: str = Field(max_length=200, unique=True)
    kind: str = Field(max_length=16)  # complaint, praise
    source: str = Field(max_length=16)  # survey, followup, staff, patient
    category: str = Field(max_length=32, index=True)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=36)
    task_id: str | None = Field(default=None, foreign_key="care_task.id", max_length=36)
    hospital_code: str = Field(max_length=32)
    # The department handling it now (a reassignment changes it).
    department_code: str = Field(max_length=32)
    summary: str = Field(sa_type=EncryptedText("complaint.summary"))
    status: str = Field(default="open", max_length=16)
    # Who has it: the department, its head, or the quality office.
    escalation: str = Field(default="department", max_length=32)
    opened_by: str = Field(max_length=64)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    acknowledge_by: datetime | None = ts_field()
    resolve_by: datetime | None = ts_field()
    acknowledged_at: datetime | None = ts_field()
    resolved_at: datetime | None = ts_field()
    closed_at: datetime | None = ts_field()
    outcome: str | None = Field(default=None, sa_type=EncryptedText("complaint.outcome"))
    rating_stars: int | None = None
    rating_comment: str | None = Field(
        default=None, sa_type=EncryptedText("complaint.rating_comment")
    )
    # Every step: kind, at, by, note.
    steps: list[dict[str, Any]] = Field(
        default_factory=list, sa_type=EncryptedJSON("complaint.steps")
    )
    # The workflow's step number last written: an older write arriving late changes nothing.
    version: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
