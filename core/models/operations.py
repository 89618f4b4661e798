"""Operational tables: hospitals and their settings, staff accounts, inbound-event
deduplication and the audit trail."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime
from core.models.base import JSONType, new_id, utcnow


class StaffRole(StrEnum):
    NURSE = "nurse"
    DOCTOR = "doctor"
    CARE_MANAGER = "care_manager"
    ADMIN = "admin"
    PHARMACIST = "pharmacist"
    # The finance office: payments that need attention, reconciliation with the provider.
    FINANCE = "finance"
    # Another hospital system calling the push API (MSG-5); not a person.
    INTEGRATION = "integration"


class DataScope(StrEnum):
    """How far a staff member's view of patients reaches (SEC-1), widest first."""

    ORGANISATION = "organisation"  # every patient of the hospital
    DEPARTMENT = "department"  # patients with an encounter in their department
    WARD = "ward"  # ... in their ward of that department
    OWN = "own"  # patients whose encounter names them as responsible nurse or attending doctor


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


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_user"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(max_length=64)
    role: str = Field(max_length=16)
    # None: all departments (hospital-wide roles such as administrators).
    department_code: str | None = Field(default=None, max_length=32)
    # The ward as the HIS names it on encounters (Encounter.ward), for ward scope.
    ward: str | None = Field(default=None, max_length=64)
    # The HIS staff number (工号) that encounters carry as responsible nurse / attending doctor.
    staff_code: str | None = Field(default=None, max_length=64)
    data_scope: str = Field(default=DataScope.DEPARTMENT, max_length=16)
    # A static API token (SHA-256 only): machine-to-machine (role integration) everywhere, and
    # people only outside production. None: this account has no static token.
    token_sha256: str | None = Field(default=None, max_length=64, unique=True)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Password sign-in (SEC-5). Login names are stored lower-case; integrations have none.
    username: str | None = Field(default=None, max_length=64, unique=True)
    password_hash: str | None = Field(default=None, max_length=255)  # argon2id, PHC string
    # Set by an administrator (initial or reset password): changed at the next sign-in.
    must_change_password: bool = False
    password_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_sign_in_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # TOTP (RFC 6238): enrolled when the secret is set, required once confirmed with a code.
    totp_secret: str | None = Field(default=None, max_length=64)
    totp_confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The last accepted time step, so a code is never accepted twice.
    totp_last_counter: int | None = Field(default=None, sa_type=sa.BigInteger)


class StaffSession(SQLModel, table=True):
    """A signed-in staff member's session; only a SHA-256 of its bearer token is stored."""

    __tablename__ = "staff_session"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    staff_id: str = Field(foreign_key="staff_user.id", index=True, max_length=36)
    token_sha256: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Absolute end; the idle timeout counts from last_seen_at.
    expires_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuditEntry(SQLModel, table=True):
    """One link of the append-only, HMAC-chained audit trail (SEC-2).

    ``seq``, ``prev_mac`` and ``mac`` are filled when the entry is flushed (core.audit_chain),
    under a lock that keeps one chain; callers never set them. On PostgreSQL a trigger refuses
    UPDATE and DELETE; the chain detects what a superuser does anyway (``make audit-verify``).
    """

    __tablename__ = "audit_entry"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    # Position in the chain, 1, 2, 3, ... with no gaps.
    seq: int | None = Field(default=None, nullable=False, unique=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor_type: str = Field(max_length=16)  # staff / patient / his / system
    actor_id: str | None = Field(default=None, max_length=128)
    action: str = Field(max_length=64)
    target_type: str = Field(max_length=32)
    target_id: str = Field(max_length=200)
    # Our patient id when the entry concerns a patient, for "who did what to whom" searches.
    patient_id: str | None = Field(default=None, max_length=36, index=True)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    # Hex HMAC-SM3 of the previous entry ("" for the first) and of this one.
    prev_mac: str = Field(default="", max_length=64)
    mac: str = Field(default="", max_length=64)


class Hospital(SQLModel, table=True):
    """A hospital served by this deployment, with its own settings (quiet hours, review
    deadlines, refund rules). ``config`` is validated by ``core.hospitals.HospitalConfig``."""

    __tablename__ = "hospital"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    phone: str | None = Field(default=None, max_length=32)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    config: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
