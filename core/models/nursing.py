"""Home nursing (互联网+护理服务, NUR-1..3): the items and prices administrators maintain, the
nurses who may serve them (qualifications, head nurses), and each order (the projection of its
workflow, which holds the truth: its timers and steps). The address, the assessment and the
patient's words are encrypted at rest."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from core.crypto import EncryptedJSON, EncryptedText
from core.db import UTCDateTime
from core.models.base import JSONType, new_id, ts_field, utcnow


class NursingItem(SQLModel, table=True):
    __tablename__ = "nursing_item"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=1000)
    price_fen: int
    # Kept when the order is cancelled after the nurse has set out (上门费).
    visit_fee_fen: int = 0
    # How long a visit is expected to take; past it (and a grace) the head nurse is alerted.
    expected_minutes: int
    # The qualification a nurse needs (e.g. "picc"); None: any registered home-care nurse.
    qualification: str | None = Field(default=None, max_length=32)
    # The nursing-document template (a published form) the nurse fills in after the visit.
    assessment_form: str = Field(max_length=64)
    active: bool = True
    updated_by: str = Field(max_length=64)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class NursingNurse(SQLModel, table=True):
    """A nurse registered for home visits (a staff account), with what they are qualified for."""

    __tablename__ = "nursing_nurse"

    staff_id: str = Field(foreign_key="staff_user.id", primary_key=True, max_length=36)
    qualifications: list[str] = Field(default_factory=list, sa_type=JSONType)
    head_nurse: bool = False
    on_duty: bool = True
    # Where alarms reach them by SMS (head nurses).
    phone: str | None = Field(default=None, sa_type=EncryptedText("nursing_nurse.phone"))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class NursingOrder(SQLModel, table=True):
    __tablename__ = "nursing_order"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str = Field(max_length=200, unique=True)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=36)
    item_code: str = Field(foreign_key="nursing_item.code", max_length=32, index=True)
    # The department the patient is under (their latest encounter's), or home_nursing: whose
    # staff see the order in their data scope.
    department_code: str = Field(max_length=32, index=True)
    # The price and fee when ordered (an item's price may change later).
    price_fen: int
    visit_fee_fen: int
    address: str = Field(sa_type=EncryptedText("nursing_order.address"))
    visit_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default="verifying", max_length=16, index=True)
    nurse_id: str | None = Field(default=None, max_length=36, index=True)
    escalated: bool = False
    payment_order_id: str | None = Field(default=None, max_length=36)
    refund_id: str | None = Field(default=None, max_length=36)
    refunded_fen: int = 0
    # The upload holding the signature the patient drew, or "typed" (signed by name in the
    # hospital's app). The informed consent is accepted by its version, audited.
    patient_signature: str | None = Field(default=None, max_length=40)
    assessment: dict[str, Any] | None = Field(
        default=None, sa_type=EncryptedJSON("nursing_order.assessment")
    )
    rating: int | None = None
    rating_comment: str | None = Field(
        default=None, sa_type=EncryptedText("nursing_order.rating_comment")
    )
    # Every step: kind, at, by, note (taken, transferred, departed, alarm, ...).
    steps: list[dict[str, Any]] = Field(
        default_factory=list, sa_type=EncryptedJSON("nursing_order.steps")
    )
    note: str | None = Field(default=None, max_length=300)
    version: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    completed_at: datetime | None = ts_field()
