"""Inputs, updates, queries and activity payloads of the prescription review workflow (RX-*).

Plain pydantic models shared by the workflow, its activities and the API. Nothing here does I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.hospitals import PrescriptionConfig, RxStatus
from core.validation import Line, Text

PRESCRIPTION_WORKFLOW = "PrescriptionReview"
UPDATE_DECIDE = "decide"
UPDATE_REVISE = "revise"
UPDATE_CANCEL = "cancel"
UPDATE_PAYMENT = "record_payment"
UPDATE_ENTERPRISE_STATUS = "enterprise_status"
UPDATE_REFUND = "refund"
QUERY_STATE = "state"

ACTIVITY_CHECK = "prescriptions.check"
ACTIVITY_RECORD = "prescriptions.record"
ACTIVITY_HIS_CALLBACK = "his.prescription_callback"
ACTIVITY_DISPATCH = "enterprise.dispatch"
ACTIVITY_CANCEL_ORDER = "enterprise.cancel"

SYSTEM_REVIEWER = "system"

REVIEW_QUEUE_SUFFIX = ".review"


def review_task_queue(base: str) -> str:
    """Prescriptions run on a task queue of their own, so a review deadline's conclusion never
    waits behind the platform's other work (messages, pathways) in a shared queue (RX-4)."""
    return f"{base}{REVIEW_QUEUE_SUFFIX}"


def base_task_queue(queue: str) -> str:
    """The platform's main task queue for a prescription running on ``queue`` (runs started
    before the review queue existed run on the main queue itself)."""
    return queue.removesuffix(REVIEW_QUEUE_SUFFIX)


ProcessingMethod = Literal[
    "先煎", "后下", "包煎", "另煎", "另炖", "烊化", "冲服", "泡服", "煎汤代水"
]
EnterpriseStatus = Literal[
    "dispensing", "decocting", "shipped", "delivered", "ready_for_pickup", "picked_up"
]
FINISHED_STATUSES: frozenset[str] = frozenset({"cancelled", "delivered", "picked_up", "refunded"})


def prescription_workflow_id(hospital_code: str, prescription_no: str) -> str:
    """One workflow per prescription: a resubmitted or duplicated event finds the same one."""
    return f"rx:{hospital_code}:{prescription_no}"


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RxItem(_Msg):
    herb: Annotated[Line, Field(min_length=1, max_length=20)]
    # Grams per dose (剂); an absurd figure is a data-entry error, refused with a 422.
    dose_g: float = Field(gt=0, le=500)
    processing: ProcessingMethod | None = None


class Diagnosis(_Msg):
    code: Line | None = Field(default=None, max_length=32)
    name: Annotated[Line, Field(min_length=1, max_length=100)]


class Address(_Msg):
    receiver: Annotated[Line, Field(min_length=1, max_length=32)]
    phone: Annotated[Line, Field(min_length=5, max_length=32)]
    district: Annotated[Line, Field(min_length=1, max_length=50)]
    detail: Annotated[Text, Field(min_length=1, max_length=200)]


class Delivery(_Msg):
    mode: Literal["delivery", "pickup"]
    address: Address | None = None
    pickup_site: Line | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _address_for_delivery(self) -> Delivery:
        if self.mode == "delivery" and self.address is None:
            raise ValueError("an address is required for delivery")
        return self


class PrescriptionContent(_Msg):
    diagnosis: list[Diagnosis] = Field(min_length=1, max_length=10)
    items: list[RxItem] = Field(min_length=1, max_length=60)
    # Number of doses (剂数).
    doses: int = Field(ge=1, le=90)
    # 代煎: the enterprise decocts the herbs.
    decoction: bool = False
    instructions: Text | None = Field(default=None, max_length=500)


class Finding(_Msg):
    code: str
    rule: str
    herbs: list[str]
    message: str


class PrescriptionInput(_Msg):
    prescription_id: str
    hospital_code: str
    prescription_no: str
    patient_id: str
    department_code: str
    doctor_id: str
    content: PrescriptionContent
    delivery: Delivery
    # The hospital's rules, pinned when the prescription arrives.
    config: PrescriptionConfig
    submitted_at: datetime


class Conclusion(_Msg):
    round: int
    outcome: Literal["approved", "rejected"]
    reviewer: str  # a pharmacist's id, or "system"
    reviewer_name: str | None = None
    reason: str
    at: datetime
    timed_out: bool = False


class ReviewRound(_Msg):
    number: int
    started_at: datetime
    deadline_at: datetime
    content: PrescriptionContent
    findings: list[Finding]
    conclusion: Conclusion | None = None


class StatusChange(_Msg):
    status: RxStatus
    at: datetime
    by: str
    note: str | None = None


class Payment(_Msg):
    payment_id: Annotated[Line, Field(min_length=1, max_length=64)]
    amount_fen: int = Field(gt=0)
    paid_at: datetime


class Refund(_Msg):
    refund_id: Annotated[Line, Field(min_length=1, max_length=64)]
    reason: Annotated[Text, Field(min_length=1, max_length=200)]
    requested_by: Annotated[Line, Field(max_length=64)] = "his"


class PrescriptionState(_Msg):
    prescription_id: str
    status: RxStatus
    round: int
    rounds: list[ReviewRound]
    payment: Payment | None = None
    enterprise: str | None = None
    tracking_no: str | None = None
    refund: Refund | None = None
    history: list[StatusChange]


class Decision(_Msg):
    round: int
    outcome: Literal["approve", "reject"]
    reason: Text | None = Field(default=None, max_length=500)
    pharmacist_id: str
    pharmacist_name: str | None = None

    @model_validator(mode="after")
    def _reason_for_reject(self) -> Decision:
        if self.outcome == "reject" and not (self.reason and self.reason.strip()):
            raise ValueError("a rejection needs a reason")
        return self


class Revision(_Msg):
    content: PrescriptionContent
    doctor_id: str


class Cancellation(_Msg):
    reason: Annotated[Text, Field(min_length=1, max_length=200)]
    by: Annotated[Line, Field(max_length=64)] = "his"


class EnterpriseUpdate(_Msg):
    status: EnterpriseStatus
    at: datetime
    note: Text | None = Field(default=None, max_length=200)
    tracking_no: Line | None = Field(default=None, max_length=64)


# Activity payloads


class CheckRequest(_Msg):
    items: list[RxItem]


class CheckResult(_Msg):
    findings: list[Finding]


class RecordRequest(_Msg):
    """A projection write: the whole state after an event, and the event itself."""

    input: PrescriptionInput
    state: PrescriptionState
    seq: int
    kind: str
    actor: str
    note: str | None = None
    at: datetime


class HisCallback(_Msg):
    hospital_code: str
    prescription_no: str
    prescription_id: str
    seq: int
    event: str
    status: RxStatus
    round: int
    reviewer: str | None = None
    reason: str | None = None
    findings: list[Finding] = Field(default_factory=list)
    at: datetime
    idempotency_key: str


class DispatchOrder(_Msg):
    enterprise: str
    prescription_id: str
    prescription_no: str
    hospital_code: str
    content: PrescriptionContent
    delivery: Delivery
    idempotency_key: str


class DispatchResult(_Msg):
    enterprise_order_id: str


class CancelOrder(_Msg):
    enterprise: str
    prescription_id: str
    reason: str
    idempotency_key: str
