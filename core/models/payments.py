"""Payments (PAY-*): orders and the projection of their payment sagas, refunds, the ledger of
money movements the sagas saw, online consultations and the daily reconciliation's findings.

Money is an integer number of fen everywhere.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.crypto import EncryptedText
from core.db import UTCDateTime
from core.models.base import JSONType, new_id, ts_field, utcnow


class PaymentOrder(SQLModel, table=True):
    """An HIS order (registration, prescription, exam, consultation) the patient pays here."""

    __tablename__ = "payment_order"
    __table_args__ = (
        # One live order per HIS order; a failed one steps aside (NULL) so it can be paid anew.
        sa.UniqueConstraint("hospital_code", "live_his_order_no", name="uq_payment_order_live"),
        sa.Index("ix_payment_order_his_no", "hospital_code", "his_order_no"),
        sa.Index("ix_payment_order_status_created", "status", "created_at"),
        sa.CheckConstraint("amount_fen > 0", name="amount_positive"),
        sa.CheckConstraint(
            "refunded_fen >= 0 AND refund_reserved_fen >= 0 "
            "AND refunded_fen + refund_reserved_fen <= amount_fen",
            name="refunds_within_amount",
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    hospital_code: str = Field(max_length=32, index=True)
    his_order_no: str = Field(max_length=64)
    live_his_order_no: str | None = Field(default=None, max_length=64)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=36)
    department_code: str = Field(max_length=32, index=True)
    department_name: str = Field(max_length=64)
    kind: str = Field(max_length=16, index=True)
    title: str = Field(max_length=100)
    amount_fen: int
    use_insurance: bool = True
    # created -> paying (the saga runs: see saga_status) -> settled | failed;
    # settled -> partially_refunded -> refunded.
    status: str = Field(default="created", max_length=20)
    saga_status: str | None = Field(default=None, max_length=20)
    scenario: str | None = Field(default=None, max_length=12)
    insurance_fen: int | None = None
    self_pay_fen: int | None = None
    presettle_id: str | None = Field(default=None, max_length=64)
    insurance_settlement_id: str | None = Field(default=None, max_length=64)
    out_trade_no: str | None = Field(default=None, max_length=32, index=True)
    transaction_id: str | None = Field(default=None, max_length=64)
    pay_url: str | None = Field(default=None, max_length=500)
    pay_deadline_at: datetime | None = ts_field()
    receipt_no: str | None = Field(default=None, max_length=64)
    failure_reason: str | None = Field(default=None, max_length=300)
    compensations: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    refunded_fen: int = 0
    # Refunds requested and not finished yet: counted against what may still be refunded.
    refund_reserved_fen: int = 0
    workflow_id: str | None = Field(default=None, max_length=200)
    created_by: str = Field(max_length=80)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    paid_at: datetime | None = ts_field()
    settled_at: datetime | None = ts_field()
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The workflow event this row reflects; an older (retried) write never wins.
    version: int = 0


class PaymentEvent(SQLModel, table=True):
    """The order's trail: every saga and refund status change, with when and why."""

    __tablename__ = "payment_event"
    __table_args__ = (sa.UniqueConstraint("source", "seq", name="uq_payment_event_source_seq"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    order_id: str = Field(foreign_key="payment_order.id", index=True, max_length=36)
    # The workflow that wrote it ("payment:<order>" or "refund:<refund>").
    source: str = Field(max_length=200)
    seq: int
    status: str = Field(max_length=20)
    note: str | None = Field(default=None, max_length=300)
    at: datetime = Field(sa_type=UTCDateTime)


class PaymentRefund(SQLModel, table=True):
    __tablename__ = "payment_refund"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    order_id: str = Field(foreign_key="payment_order.id", index=True, max_length=36)
    amount_fen: int
    reason: str = Field(max_length=200)
    requested_by: str = Field(max_length=80)
    # requested -> checking -> refunding -> informing_his -> succeeded | rejected | failed
    status: str = Field(default="requested", max_length=20)
    insurance_fen: int | None = None
    self_pay_fen: int | None = None
    provider_refund_id: str | None = Field(default=None, max_length=64)
    his_refund_no: str | None = Field(default=None, max_length=64)
    failure_reason: str | None = Field(default=None, max_length=300)
    workflow_id: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    finished_at: datetime | None = ts_field()
    version: int = 0


class LedgerEntryRow(SQLModel, table=True):
    """A movement of money a saga saw happen (or undid), once per party, kind and reference."""

    __tablename__ = "payment_ledger"
    __table_args__ = (
        sa.UniqueConstraint("party", "kind", "reference", name="uq_payment_ledger_movement"),
        sa.Index("ix_payment_ledger_party_at", "party", "at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    order_id: str = Field(foreign_key="payment_order.id", index=True, max_length=36)
    refund_id: str | None = Field(default=None, max_length=36)
    party: str = Field(max_length=12)  # provider / insurance
    kind: str = Field(max_length=12)  # payment / refund / settle / cancel
    reference: str = Field(max_length=80)
    amount_fen: int
    at: datetime = Field(sa_type=UTCDateTime)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Consultation(SQLModel, table=True):
    __tablename__ = "consultation"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    order_id: str = Field(foreign_key="payment_order.id", unique=True, max_length=36)
    hospital_code: str = Field(max_length=32)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=36)
    department_code: str = Field(max_length=32, index=True)
    # The patient's own words (often with their name or number): encrypted at rest (SEC-4).
    question: str = Field(sa_type=EncryptedText("consultation.question"))
    status: str = Field(default="paying", max_length=20, index=True)
    accept_deadline_at: datetime | None = ts_field()
    accepted_by: str | None = Field(default=None, max_length=64)
    accepted_at: datetime | None = ts_field()
    refund_id: str | None = Field(default=None, max_length=36)
    note: str | None = Field(default=None, max_length=300)
    workflow_id: str = Field(max_length=200, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = 0


class Reconciliation(SQLModel, table=True):
    """One day's comparison of the provider's bill with our ledger (PAY-8); re-running a day
    replaces its findings."""

    __tablename__ = "payment_reconciliation"

    bill_date: date = Field(primary_key=True)
    provider_lines: int
    platform_entries: int
    matched: int
    discrepancies: int
    provider_net_fen: int
    platform_net_fen: int
    ran_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Discrepancy(SQLModel, table=True):
    __tablename__ = "payment_discrepancy"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    bill_date: date = Field(foreign_key="payment_reconciliation.bill_date", index=True)
    # missing_in_platform: the provider has it, we do not; missing_at_provider: the reverse;
    # amount_mismatch: both have it with different amounts.
    kind: str = Field(max_length=24)
    movement: str = Field(max_length=12)  # payment / refund
    reference: str = Field(max_length=80)
    out_trade_no: str | None = Field(default=None, max_length=32)
    order_id: str | None = Field(default=None, max_length=36)
    provider_fen: int | None = None
    platform_fen: int | None = None
    resolved: bool = False
