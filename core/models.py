"""Database tables. The workflow is the source of truth for a run; these rows are what people
search, count and export (projections), plus master data, inbound-event dedup and audit."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime

# Deterministic constraint names, so Alembic migrations are identical on every backend.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable), plain JSON text on SQLite.
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class TaskStatus(StrEnum):
    PENDING = "pending"  # scheduled, not yet due
    SENT = "sent"  # message with link delivered to the channel
    EXPIRED = "expired"  # link validity over, not yet lost: staff may still follow up
    COMPLETED = "completed"
    ABNORMAL = "abnormal"  # completed with answers marked abnormal
    LOST = "lost"  # 失访: past the task's maximum validity without an answer
    SKIPPED = "skipped"  # its window had closed before the patient was enrolled
    FAILED = "failed"  # the message could not be sent (e.g. no valid phone number)


OPEN_TASK_STATUSES = (TaskStatus.PENDING, TaskStatus.SENT, TaskStatus.EXPIRED)


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"


class StaffRole(StrEnum):
    NURSE = "nurse"
    DOCTOR = "doctor"
    CARE_MANAGER = "care_manager"
    ADMIN = "admin"


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"


class Patient(SQLModel, table=True):
    __tablename__ = "patient"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    his_patient_id: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=64)
    phone: str = Field(max_length=32)
    sex: str | None = Field(default=None, max_length=1)
    birth_date: date | None = None
    excluded: bool = False
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
    admitted_at: datetime | None = _ts()
    discharged_at: datetime | None = _ts()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InboundEvent(SQLModel, table=True):
    """Every accepted webhook event, keyed by the sender's event id so a redelivery is a no-op."""

    __tablename__ = "inbound_event"
    __table_args__ = (sa.UniqueConstraint("source", "event_id", name="uq_inbound_event_source_id"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    source: str = Field(max_length=32)
    event_id: str = Field(max_length=128)
    event_type: str = Field(max_length=32)
    body_sha256: str = Field(max_length=64)
    # The runs this event started: [{workflow_id, run_id, plan_id, plan_version}].
    runs: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PathwayRun(SQLModel, table=True):
    __tablename__ = "pathway_run"

    workflow_id: str = Field(primary_key=True, max_length=200)
    plan_id: str = Field(max_length=64, index=True)
    plan_version: int
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=36)
    encounter_id: str | None = Field(default=None, foreign_key="encounter.id", max_length=36)
    department_code: str = Field(max_length=32, index=True)
    status: str = Field(default=RunStatus.RUNNING, max_length=16)
    anchor_at: datetime = Field(sa_type=UTCDateTime)
    clock_speedup: float = 1.0
    # The definition the run is pinned to, as handed to the workflow; pages render forms from it.
    plan_snapshot: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = _ts()


class CareTask(SQLModel, table=True):
    """One step occurrence of a run, kept in step with the workflow by projection activities."""

    __tablename__ = "care_task"
    __table_args__ = (
        sa.UniqueConstraint("workflow_id", "step_id", "occurrence", name="uq_care_task_step"),
        sa.Index("ix_care_task_status_due", "status", "due_at"),
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
    responsible_role: str = Field(max_length=16)
    status: str = Field(default=TaskStatus.PENDING, max_length=16)
    due_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = _ts()
    valid_until: datetime | None = _ts()
    lost_at: datetime | None = _ts()
    answered_at: datetime | None = _ts()
    closed_at: datetime | None = _ts()
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FormResponse(SQLModel, table=True):
    __tablename__ = "form_response"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    task_id: str = Field(foreign_key="care_task.id", unique=True, max_length=36)
    workflow_id: str = Field(max_length=200, index=True)
    form_id: str = Field(max_length=64)
    answers: dict[str, list[str]] = Field(default_factory=dict, sa_type=JSONType)
    abnormal_findings: list[dict[str, str]] = Field(default_factory=list, sa_type=JSONType)
    submitted_at: datetime = Field(sa_type=UTCDateTime)


class Alert(SQLModel, table=True):
    __tablename__ = "alert"
    __table_args__ = (sa.UniqueConstraint("task_id", "kind", name="uq_alert_task_kind"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    kind: str = Field(max_length=32)  # abnormal_answer, ...
    task_id: str = Field(foreign_key="care_task.id", max_length=36)
    workflow_id: str = Field(max_length=200, index=True)
    patient_id: str = Field(foreign_key="patient.id", max_length=36)
    department_code: str = Field(max_length=32, index=True)
    role: str = Field(max_length=16)
    summary: str = Field(max_length=500)
    details: list[dict[str, str]] = Field(default_factory=list, sa_type=JSONType)
    status: str = Field(default=AlertStatus.OPEN, max_length=16, index=True)
    raised_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = _ts()
    acknowledged_by: str | None = Field(default=None, max_length=36)
    acknowledge_note: str | None = Field(default=None, max_length=500)


class OutboundMessage(SQLModel, table=True):
    """Every message we send. The idempotency key makes a retried send a no-op."""

    __tablename__ = "outbound_message"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    idempotency_key: str = Field(max_length=255, unique=True)
    channel: str = Field(max_length=16)
    category: str = Field(max_length=32)
    template: str = Field(max_length=64)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=36)
    task_id: str | None = Field(default=None, foreign_key="care_task.id", max_length=36)
    workflow_id: str | None = Field(default=None, max_length=200, index=True)
    recipient: str = Field(max_length=32)
    body: str
    status: str = Field(default="queued", max_length=16)
    provider_message_id: str | None = Field(default=None, max_length=128)
    # Workflow time the send was due (virtual under a compressed clock or time skipping).
    scheduled_for: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_user"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(max_length=64)
    role: str = Field(max_length=16)
    # None: all departments (hospital-wide roles such as administrators).
    department_code: str | None = Field(default=None, max_length=32)
    token_sha256: str = Field(max_length=64, unique=True)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor_type: str = Field(max_length=16)  # staff / patient / his / system
    actor_id: str | None = Field(default=None, max_length=128)
    action: str = Field(max_length=64)
    target_type: str = Field(max_length=32)
    target_id: str = Field(max_length=200)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
