"""Herbal prescriptions (RX-*): the projection of each prescription's workflow, and its event
trail (every round, conclusion and status change, with who and when)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.crypto import EncryptedJSON
from core.db import UTCDateTime
from core.models.base import JSONType, new_id, ts_field, utcnow


class Prescription(SQLModel, table=True):
    __tablename__ = "prescription"
    __table_args__ = (
        sa.UniqueConstraint("hospital_code", "prescription_no", name="uq_prescription_number"),
        sa.Index("ix_prescription_status_deadline", "status", "review_deadline_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    hospital_code: str = Field(max_length=32, index=True)
    prescription_no: str = Field(max_length=64)
    workflow_id: str = Field(max_length=200, unique=True)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=36)
    department_code: str = Field(max_length=32, index=True)
    department_name: str = Field(max_length=64)
    doctor_id: str = Field(max_length=64, index=True)
    doctor_name: str = Field(max_length=64)
    diagnosis: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    items: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    doses: int
    decoction: bool = False
    # The delivery address names the receiver and their phone: encrypted at rest (SEC-4).
    delivery: dict[str, Any] = Field(
        default_factory=dict, sa_type=EncryptedJSON("prescription.delivery")
    )
    status: str = Field(default="reviewing", max_length=20)
    round: int = 1
    round_started_at: datetime | None = ts_field()
    review_deadline_at: datetime | None = ts_field()
    findings: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    review_outcome: str | None = Field(default=None, max_length=16)
    reviewed_by: str | None = Field(default=None, max_length=64)
    reviewed_at: datetime | None = ts_field()
    review_reason: str | None = Field(default=None, max_length=500)
    review_timed_out: bool = False
    enterprise_code: str | None = Field(default=None, max_length=32)
    tracking_no: str | None = Field(default=None, max_length=64)
    payment_id: str | None = Field(default=None, max_length=64)
    amount_fen: int | None = None
    paid_at: datetime | None = ts_field()
    refund_reason: str | None = Field(default=None, max_length=200)
    refunded_at: datetime | None = ts_field()
    submitted_at: datetime = Field(sa_type=UTCDateTime, index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The workflow event this row reflects; an older (retried, reordered) write never wins.
    version: int = 0


class PrescriptionEvent(SQLModel, table=True):
    __tablename__ = "prescription_event"
    __table_args__ = (
        sa.UniqueConstraint("prescription_id", "seq", name="uq_prescription_event_seq"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    prescription_id: str = Field(foreign_key="prescription.id", index=True, max_length=36)
    seq: int
    kind: str = Field(max_length=32)
    status: str = Field(max_length=20)
    round: int
    actor: str = Field(max_length=80)
    note: str | None = Field(default=None, max_length=500)
    at: datetime = Field(sa_type=UTCDateTime)
