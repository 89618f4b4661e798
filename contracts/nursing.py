"""A home-nursing order (互联网+护理服务, NUR-1..3) as a workflow: the real-name check, the
payment (the payment saga, a child), a nurse taking it within the window or its dispatch (or
the head nurse told), transfers, the visit's steps with an alarm when it overruns, the
patient's signature, the nursing record, the rating; cancellation with the refund the rules
allow (the refund saga, a child).

Plain pydantic models shared by the workflow, its activities and the API. No I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.hospitals import NursingPolicy
from core.validation import Line, Text
from nursing.alarms import AlarmLevel
from nursing.lifecycle import OrderStatus

NURSING_WORKFLOW = "NursingOrder"
UPDATE_TAKE = "take"
UPDATE_ASSIGN = "assign"
UPDATE_TRANSFER = "transfer"
UPDATE_VISIT = "visit_step"
UPDATE_ALARM = "alarm"
UPDATE_SIGN = "patient_sign"
UPDATE_ASSESS = "assess"
UPDATE_RATE = "rate"
UPDATE_CANCEL = "cancel"
QUERY_STATE = "state"

ACTIVITY_VERIFY = "nursing.verify_identity"
ACTIVITY_CHARGE = "nursing.charge"
ACTIVITY_DISPATCH = "nursing.dispatch"
ACTIVITY_QUALIFIED = "nursing.qualified"
ACTIVITY_RECORD = "nursing.record"
ACTIVITY_ALARM = "nursing.alarm"

SYSTEM = "system"
PATIENT = "patient"


def nursing_workflow_id(order_id: str) -> str:
    return f"nursing:{order_id}"


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ItemTerms(_Msg):
    """The item as ordered: its price and timings then, whatever changes later."""

    code: str
    name: str
    price_fen: int
    visit_fee_fen: int
    expected_minutes: int
    qualification: str | None
    assessment_form: str


class NursingInput(_Msg):
    order_id: str
    patient_id: str
    item: ItemTerms
    visit_at: datetime
    hospital_code: str
    department_code: str
    timezone: str
    policy: NursingPolicy


class Take(_Msg):
    nurse_id: Annotated[Line, Field(min_length=1, max_length=36)]


class Assign(_Msg):
    """The head nurse gives the order to a nurse (派单)."""

    by: Annotated[Line, Field(min_length=1, max_length=36)]
    nurse_id: Annotated[Line, Field(min_length=1, max_length=36)]


class Transfer(_Msg):
    by: Annotated[Line, Field(min_length=1, max_length=36)]
    to_nurse_id: Annotated[Line, Field(min_length=1, max_length=36)]
    reason: Annotated[Text, Field(min_length=2, max_length=300)]


class VisitStep(_Msg):
    by: Annotated[Line, Field(min_length=1, max_length=36)]
    step: Literal["depart", "arrive", "start", "finish"]


class Alarm(_Msg):
    by: Annotated[Line, Field(min_length=1, max_length=36)]
    level: AlarmLevel = "important"
    note: Annotated[Text | None, Field(max_length=300)] = None


class PatientSignature(_Msg):
    """The patient confirms the service was done: a signature drawn on the phone page (the
    upload it was stored as), or a name signed in the hospital's own app."""

    signed_name: Annotated[Line, Field(min_length=1, max_length=50)] | None = None
    signature: Annotated[str, Field(pattern=r"^upl_[A-Za-z0-9_-]{32}$")] | None = None

    @model_validator(mode="after")
    def _signed_somehow(self) -> PatientSignature:
        if self.signed_name is None and self.signature is None:
            raise ValueError("signed_name or signature is required")
        return self


class Assessment(_Msg):
    by: Annotated[Line, Field(min_length=1, max_length=36)]
    answers: dict[str, list[str]]


class NursingRating(_Msg):
    stars: int = Field(ge=1, le=5)
    comment: Annotated[Text | None, Field(max_length=500)] = None


class Cancel(_Msg):
    by: Annotated[Line, Field(min_length=1, max_length=64)]
    by_staff: bool
    reason: Annotated[Text, Field(min_length=2, max_length=300)]


class Step(_Msg):
    kind: str
    at: datetime
    by: str
    note: str | None = None


class NursingState(_Msg):
    status: OrderStatus
    nurse_id: str | None
    escalated: bool
    payment_order_id: str | None
    refund_id: str | None
    refunded_fen: int
    rating: int | None
    steps: list[Step]


class NursingRef(_Msg):
    order_id: str


class Verified(_Msg):
    result: Literal["match", "mismatch", "not_found", "invalid"]


class Dispatched(_Msg):
    nurse_id: str | None


class Qualification(_Msg):
    nurse_id: str
    qualification: str | None


class Qualified(_Msg):
    qualified: bool


class RecordNursing(_Msg):
    """A projection write: the whole state after a step, and what the patient is told."""

    input: NursingInput
    state: NursingState
    seq: int
    # What the patient is told (a status message), if anything.
    tell_patient: str | None = None
    assessment: dict[str, Any] | None = None
    rating_comment: str | None = None
    signed_name: str | None = None
    # The upload holding the signature the patient drew.
    signature: str | None = None


class RaiseAlarm(_Msg):
    """An alarm for the head nurses: an alert for them; for a warning or an important one the
    workflow also texts each head nurse the activity names (staff numbers, not patients')."""

    order_id: str
    level: AlarmLevel
    text: str
    key: str


class HeadNurse(_Msg):
    staff_id: str
    phone: str


class Alarmed(_Msg):
    texted: list[HeadNurse]
