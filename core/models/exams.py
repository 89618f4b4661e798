"""The physical-exam integration (PX-1..8): a patient's bound exam account with the data-use
authorisation they accepted, each exam booking (the projection of its workflow, which holds the
truth), the vendor's item dictionary and how its items map to the platform's catalogue, the
results kept under standard items, results held until an item is mapped, dictionary changes
kept for retry, and every vendor message received with the answer given to it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.crypto import EncryptedJSON, EncryptedText
from core.db import UTCDateTime
from core.models.base import JSONType, new_id, ts_field, utcnow


class ExamAccount(SQLModel, table=True):
    __tablename__ = "exam_account"

    patient_id: str = Field(foreign_key="patient.id", primary_key=True, max_length=36)
    account_no: str = Field(max_length=64, unique=True)
    # The data-use authorisation (数据使用授权协议) the patient accepted, by version.
    consent_version: str = Field(max_length=32)
    consented_at: datetime = Field(sa_type=UTCDateTime)
    consented_by: str = Field(max_length=64)  # the patient, or the staff member with them
    # The vendor found no account and created this one (US-K1, 103).
    created_by_vendor: bool = False
    bound_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ExamBooking(SQLModel, table=True):
    __tablename__ = "exam_booking"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str = Field(max_length=200, unique=True)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=36)
    department_code: str = Field(max_length=32)
    account_no: str = Field(max_length=64, index=True)
    # The vendor's number for this exam (US-H2..H4 name it); known once booked or guided.
    exam_no: str | None = Field(default=None, max_length=64, unique=True)
    vendor_booking_no: str | None = Field(default=None, max_length=64)
    exam_date: date
    # reviewing, booking, booked, guided, resulted, reported, failed, closed
    status: str = Field(default="reviewing", max_length=16)
    # The personalised list and what the doctor ticked; what was booked.
    listed: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    ticked: list[str] = Field(default_factory=list, sa_type=JSONType)
    booked_items: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    review_by: datetime | None = ts_field()
    reviewed_by: str | None = Field(default=None, max_length=64)
    # The last return code and message of the vendor interface (e.g. 202 and its reason).
    last_code: str | None = Field(default=None, max_length=8)
    last_message: str | None = Field(default=None, max_length=500)
    guide: str | None = Field(default=None, sa_type=EncryptedText("exam_booking.guide"))
    guide_received_at: datetime | None = ts_field()
    report: str | None = Field(default=None, sa_type=EncryptedText("exam_booking.report"))
    conclusions: list[str] = Field(
        default_factory=list, sa_type=EncryptedJSON("exam_booking.conclusions")
    )
    report_received_at: datetime | None = ts_field()
    abnormal_items: list[str] = Field(default_factory=list, sa_type=JSONType)
    followup_workflow_id: str | None = Field(default=None, max_length=200)
    requested_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ExamVendorItem(SQLModel, table=True):
    """The vendor's item dictionary (US-H5)."""

    __tablename__ = "exam_vendor_item"

    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=100)
    category_code: str = Field(max_length=64)
    category_name: str = Field(max_length=64)
    unit: str | None = Field(default=None, max_length=20)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ExamItemMapping(SQLModel, table=True):
    """A vendor item code → the platform's standard item (by name automatically, or by staff)."""

    __tablename__ = "exam_item_mapping"

    vendor_code: str = Field(primary_key=True, max_length=64)
    standard_code: str = Field(max_length=32)
    mapped_by: str = Field(max_length=64)
    mapped_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ExamResult(SQLModel, table=True):
    __tablename__ = "exam_result"
    __table_args__ = (sa.UniqueConstraint("exam_no", "vendor_code", name="uq_exam_result_item"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    exam_no: str = Field(max_length=64, index=True)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=36)
    vendor_code: str = Field(max_length=64)
    standard_code: str = Field(max_length=32)
    name: str = Field(max_length=100)
    value: str = Field(sa_type=EncryptedText("exam_result.value"))
    unit: str | None = Field(default=None, max_length=20)
    reference_range: str | None = Field(default=None, max_length=100)
    abnormal: bool = False
    # A delete (change type 3) leaves the row, so a late add cannot bring the result back.
    deleted: bool = False
    # The vendor's time of the change last applied: an older push changes nothing.
    changed_at: datetime = Field(sa_type=UTCDateTime)


class ExamResultHold(SQLModel, table=True):
    """A result whose item matches nothing yet (US-H3, 501): shown to staff, saved again as a
    result once they map the item."""

    __tablename__ = "exam_result_hold"
    __table_args__ = (sa.UniqueConstraint("exam_no", "vendor_code", name="uq_exam_hold_item"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    exam_no: str = Field(max_length=64, index=True)
    patient_id: str = Field(foreign_key="patient.id", max_length=36)
    vendor_code: str = Field(max_length=64, index=True)
    vendor_name: str = Field(max_length=100)
    change_type: int
    item: dict[str, Any] = Field(sa_type=EncryptedJSON("exam_result_hold.item"))
    changed_at: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ExamDictionaryChange(SQLModel, table=True):
    """A dictionary change that could not be saved (US-H5, 701), kept and applied by a retrying
    workflow."""

    __tablename__ = "exam_dictionary_change"

    message_id: str = Field(primary_key=True, max_length=64)
    change_type: int
    items: list[dict[str, Any]] = Field(sa_type=JSONType)
    error: str = Field(max_length=300)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    applied_at: datetime | None = ts_field()


class ExamMessage(SQLModel, table=True):
    """A vendor push that took effect, with the answer given: the same push again gets the same
    answer and changes nothing."""

    __tablename__ = "exam_message"

    message_id: str = Field(primary_key=True, max_length=64)
    interface: str = Field(max_length=8)
    body_sha256: str = Field(max_length=64)
    code: str = Field(max_length=8)
    message: str = Field(max_length=500)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
