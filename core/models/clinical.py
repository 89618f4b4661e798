"""Clinical records: patients, encounters, and the projections of pathway runs (runs, tasks,
answers, alerts). The workflow is the source of truth for a run; these rows are what people
search, count and export."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.crypto import EncryptedJSON, EncryptedText, blind_index
from core.db import UTCDateTime
from core.models.base import JSONType, new_id, ts_field, utcnow


class TaskStatus(StrEnum):
    PENDING = "pending"  # scheduled, not yet due
    SENT = "sent"  # message with link delivered to the channel
    READ = "read"  # an article the patient opened (ED-2)
    NOT_NEEDED = "not_needed"  # a condition did not hold, the plan ended, or was migrated
    EXPIRED = "expired"  # link validity over, not yet lost: staff may still follow up
    COMPLETED = "completed"
    ABNORMAL = "abnormal"  # completed with answers marked abnormal
    LOST = "lost"  # 失访: past the task's maximum validity without an answer
    SKIPPED = "skipped"  # its window had closed before the patient was enrolled
    FAILED = "failed"  # the message could not be sent (e.g. no valid phone number)


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    ENDED = "ended"  # ended early by staff or because the patient was excluded


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"  # someone has it in hand
    RESOLVED = "resolved"  # dealt with, and what was done is noted


class Patient(SQLModel, table=True):
    __tablename__ = "patient"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    his_patient_id: str = Field(max_length=64, unique=True, index=True)
    # Personal data, encrypted at rest (SEC-4): SM4-GCM envelopes, see core/crypto.py. Exact
    # lookups by phone or ID-card number use the blind indexes, kept in step on every flush.
    name: str = Field(sa_type=EncryptedText("patient.name"))
    phone: str = Field(sa_type=EncryptedText("patient.phone"))
    id_number: str | None = Field(default=None, sa_type=EncryptedText("patient.id_number"))
    address: str | None = Field(default=None, sa_type=EncryptedText("patient.address"))
    phone_index: str | None = Field(default=None, max_length=64, index=True)
    id_number_index: str | None = Field(default=None, max_length=64, index=True)
    sex: str | None = Field(default=None, max_length=1)
    birth_date: date | None = None
    excluded: bool = False
    # Messaging (MSG-1, MSG-6): the WeChat official-account binding, the channel the patient
    # prefers, and the message categories they switched off.
    wechat_openid: str | None = Field(default=None, max_length=64, unique=True)
    preferred_channel: str | None = Field(default=None, max_length=16)
    message_opt_outs: list[str] = Field(default_factory=list, sa_type=JSONType)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Encounter(SQLModel, table=True):
    __tablename__ = "encounter"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    his_encounter_id: str = Field(max_length=64, unique=True, index=True)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=36)
    kind: str = Field(max_length=16)  # inpatient / outpatient / exam
    department_code: str = Field(max_length=32, index=True)
    department_name: str = Field(max_length=64)
    ward: str | None = Field(default=None, max_length=64)
    bed: str | None = Field(default=None, max_length=16)
    attending_doctor: str | None = Field(default=None, max_length=64)
    responsible_nurse: str | None = Field(default=None, max_length=64)
    diagnoses: list[dict[str, str]] = Field(default_factory=list, sa_type=JSONType)
    # The steps the HIS said the visit or stay went through (SAT-2: a satisfaction question
    # about another step is not asked); None: not reported, every question is asked.
    care_steps: list[str] | None = Field(default=None, sa_type=JSONType)
    admitted_at: datetime | None = ts_field()
    discharged_at: datetime | None = ts_field()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PathwayRun(SQLModel, table=True):
    __tablename__ = "pathway_run"
    # The run list's order (newest first) without sorting every run in scope.
    __table_args__ = (sa.Index("ix_pathway_run_started", "started_at"),)

    workflow_id: str = Field(primary_key=True, max_length=200)
    plan_id: str = Field(max_length=64, index=True)
    plan_version: int
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=36)
    encounter_id: str | None = Field(default=None, foreign_key="encounter.id", max_length=36)
    department_code: str = Field(max_length=32, index=True)
    status: str = Field(default=RunStatus.RUNNING, max_length=16)
    anchor_at: datetime = Field(sa_type=UTCDateTime)
    clock_speedup: float = 1.0
    kind: str = Field(default="followup", max_length=32)
    anchor_event: str = Field(default="discharge", max_length=32)
    paused: bool = False
    ended_reason: str | None = Field(default=None, max_length=300)
    # The definition the run is pinned to, as handed to the workflow; pages render forms from it.
    plan_snapshot: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = ts_field()


class CareTask(SQLModel, table=True):
    """One step occurrence of a run, kept in step with the workflow by projection activities."""

    __tablename__ = "care_task"
    __table_args__ = (
        sa.UniqueConstraint("workflow_id", "step_id", "occurrence", name="uq_care_task_step"),
        sa.Index("ix_care_task_status_due", "status", "due_at"),
        sa.Index("ix_care_task_department_status_due", "department_code", "status", "due_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    workflow_id: str = Field(foreign_key="pathway_run.workflow_id", max_length=200)
    step_id: str = Field(max_length=64)
    occurrence: int = 0
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=36)
    plan_id: str = Field(max_length=64, index=True)
    department_code: str = Field(max_length=32, index=True)
    title: str = Field(max_length=128)
    form_id: str | None = Field(default=None, max_length=64)
    article_id: str | None = Field(default=None, max_length=64)
    action_type: str = Field(default="form", max_length=16)
    plan_version: int = 1
    responsible_role: str = Field(max_length=16)
    status: str = Field(default=TaskStatus.PENDING, max_length=16)
    due_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = ts_field()
    valid_until: datetime | None = ts_field()
    lost_at: datetime | None = ts_field()
    answered_at: datetime | None = ts_field()
    read_at: datetime | None = ts_field()
    closed_at: datetime | None = ts_field()
    reason: str | None = Field(default=None, max_length=300)
    # The form's primary score (satisfaction, a scale total) and the highest rule level fired.
    score: float | None = None
    risk_level: str | None = Field(default=None, max_length=16)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FormResponse(SQLModel, table=True):
    __tablename__ = "form_response"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    task_id: str = Field(foreign_key="care_task.id", unique=True, max_length=36)
    workflow_id: str = Field(max_length=200, index=True)
    form_id: str = Field(max_length=64)
    # Free text the patient typed, encrypted as a whole (read in Python, never queried in SQL).
    answers: dict[str, list[str]] = Field(
        default_factory=dict, sa_type=EncryptedJSON("form_response.answers")
    )
    abnormal_findings: list[dict[str, str]] = Field(default_factory=list, sa_type=JSONType)
    scores: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    submitted_at: datetime = Field(sa_type=UTCDateTime)


class FormDraft(SQLModel, table=True):
    """A form the patient began and left (FORM-3): their answers so far, shown again when they
    come back through the same link while it is valid; gone once the form is submitted."""

    __tablename__ = "form_draft"

    task_id: str = Field(foreign_key="care_task.id", primary_key=True, max_length=36)
    answers: dict[str, list[str]] = Field(
        default_factory=dict, sa_type=EncryptedJSON("form_draft.answers")
    )
    saved_at: datetime = Field(sa_type=UTCDateTime)


class Alert(SQLModel, table=True):
    __tablename__ = "alert"
    __table_args__ = (
        sa.UniqueConstraint("task_id", "kind", name="uq_alert_task_kind"),
        # The alert list (open ones, newest first) without sorting every open alert.
        sa.Index("ix_alert_status_raised", "status", "raised_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    kind: str = Field(max_length=32)  # abnormal_answer, ...
    # The care task it is about; None for a process without tasks (a physical exam's).
    task_id: str | None = Field(default=None, foreign_key="care_task.id", max_length=36)
    workflow_id: str = Field(max_length=200, index=True)
    patient_id: str = Field(foreign_key="patient.id", max_length=36)
    department_code: str = Field(max_length=32, index=True)
    role: str = Field(max_length=16)
    level: str = Field(default="warning", max_length=16)
    summary: str = Field(max_length=500)
    details: list[dict[str, str]] = Field(default_factory=list, sa_type=JSONType)
    status: str = Field(default=AlertStatus.OPEN, max_length=16, index=True)
    raised_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = ts_field()
    acknowledged_by: str | None = Field(default=None, max_length=36)
    acknowledge_note: str | None = Field(default=None, max_length=500)
    resolved_at: datetime | None = ts_field()
    resolved_by: str | None = Field(default=None, max_length=36)
    resolution_note: str | None = Field(default=None, max_length=500)


@sa.event.listens_for(Patient, "before_insert")
@sa.event.listens_for(Patient, "before_update")
def _patient_blind_indexes(_mapper: Any, _connection: Any, patient: Patient) -> None:
    patient.phone_index = blind_index("phone", patient.phone)
    patient.id_number_index = blind_index("id_number", patient.id_number)
