"""Events the HIS pushes to our webhooks (HIS-1). Field names follow the HIS interface document."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from contracts.prescription import Delivery, EnterpriseStatus, PrescriptionContent
from core.validation import Line, Text

# HIS identifiers end up in workflow ids and URLs, so only a safe alphabet is accepted.
HisId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class _Event(BaseModel):
    # Hospitals add fields to their messages over time; unknown fields are ignored, not refused.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Diagnosis(_Event):
    code: Annotated[Line, Field(min_length=1, max_length=32)]
    name: Annotated[Line, Field(min_length=1, max_length=100)]


class EncounterInfo(_Event):
    encounter_id: HisId
    kind: Literal["inpatient", "outpatient", "exam"]
    department_code: HisId
    department_name: Annotated[Line, Field(min_length=1, max_length=64)]
    ward: Line | None = Field(default=None, max_length=64)
    bed: Line | None = Field(default=None, max_length=16)
    attending_doctor: Line | None = Field(default=None, max_length=64)
    responsible_nurse: Line | None = Field(default=None, max_length=64)
    admitted_at: AwareDatetime | None = None
    discharged_at: AwareDatetime | None = None
    diagnoses: list[Diagnosis] = Field(default_factory=list, max_length=50)
    # The steps of care the patient went through (registration, laboratory, imaging, pharmacy…,
    # see pathways.form_definition.CareStep); steps this platform does not know are ignored.
    care_steps: list[Line] | None = Field(default=None, max_length=30)


class DischargedEncounter(EncounterInfo):
    discharged_at: AwareDatetime


class DischargeEvent(_Event):
    event_id: Annotated[Line, Field(min_length=1, max_length=128)]
    event_type: Literal["discharge"]
    occurred_at: AwareDatetime
    patient_id: HisId
    encounter: DischargedEncounter
    drugs: list[Line] = Field(default_factory=list, max_length=100)
    orders: list[Line] = Field(default_factory=list, max_length=100)

    # Demo and end-to-end tests only: how many times faster than real time the plan runs.
    demo_clock_speedup: float | None = Field(default=None, ge=1.0, le=10_000_000.0)


class PrescriptionSubmitted(PrescriptionContent):
    """A herbal prescription the HIS sends for review (RX-1)."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    event_id: Annotated[Line, Field(min_length=1, max_length=128)]
    hospital_code: HisId
    prescription_no: HisId
    patient_id: HisId
    department_code: HisId
    department_name: Annotated[Line, Field(min_length=1, max_length=64)]
    doctor_id: HisId
    doctor_name: Annotated[Line, Field(min_length=1, max_length=64)]
    delivery: Delivery


class PrescriptionRevised(PrescriptionContent):
    """The doctor's edit of a returned prescription: a new review round (RX-3)."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    event_id: Annotated[Line, Field(min_length=1, max_length=128)]
    hospital_code: HisId
    doctor_id: HisId


class PrescriptionCancelled(_Event):
    event_id: Annotated[Line, Field(min_length=1, max_length=128)]
    hospital_code: HisId
    reason: Annotated[Text, Field(min_length=1, max_length=200)]


class PrescriptionPaid(_Event):
    event_id: Annotated[Line, Field(min_length=1, max_length=128)]
    hospital_code: HisId
    payment_id: HisId
    amount_fen: int = Field(gt=0, le=100_000_000)
    paid_at: AwareDatetime


class PrescriptionRefundRequested(_Event):
    event_id: Annotated[Line, Field(min_length=1, max_length=128)]
    hospital_code: HisId
    refund_id: HisId
    reason: Annotated[Text, Field(min_length=1, max_length=200)]


class EnterpriseStatusEvent(_Event):
    """A service enterprise's progress report on a dispatched prescription (RX-6)."""

    event_id: Annotated[Line, Field(min_length=1, max_length=128)]
    prescription_id: Annotated[Line, Field(min_length=1, max_length=36)]
    status: EnterpriseStatus
    at: AwareDatetime
    note: Text | None = Field(default=None, max_length=200)
    tracking_no: Line | None = Field(default=None, max_length=64)


class EncounterEvent(_Event):
    """A visit, admission, surgery, consultation or examination (HIS-1): may enrol the patient
    in pathways anchored on it."""

    event_id: Annotated[Line, Field(min_length=1, max_length=128)]
    event_type: Literal["visit", "admission", "surgery", "consultation", "exam"]
    # When it happened: the anchor of pathways counted from this event.
    occurred_at: AwareDatetime
    patient_id: HisId
    encounter: EncounterInfo
    drugs: list[Line] = Field(default_factory=list, max_length=100)
    orders: list[Line] = Field(default_factory=list, max_length=100)


class RegistrationEvent(_Event):
    """The patient registered for an appointment: it satisfies an expected revisit (CM-7)."""

    event_id: Annotated[Line, Field(min_length=1, max_length=128)]
    event_type: Literal["registration"]
    patient_id: HisId
    department_code: HisId
    registered_at: AwareDatetime
