"""The physical-exam process (PX-8) as a workflow per booking: the doctor's review of the
personalised list within a deadline, the booking with the vendor (US-K2), then the guide,
results and report the vendor pushes (US-H2..H4, which signal it), and after the report a
follow-up when results are abnormal. Also the retry of a dictionary change that could not be
saved (US-H5, 701).

Plain pydantic models shared by the workflows, their activities and the API. No I/O.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.pathway import RunInput
from core.validation import Line

EXAM_WORKFLOW = "ExamEpisode"
EXAM_DICTIONARY_WORKFLOW = "ExamDictionaryChange"
SIGNAL_PUSHED = "pushed"
UPDATE_REVIEW = "review"
QUERY_STATE = "state"

ACTIVITY_BOOK = "exams.book"
ACTIVITY_RECORD = "exams.record"
ACTIVITY_ASSESS = "exams.assess"
ACTIVITY_APPLY_DICTIONARY = "exams.apply_dictionary"

ExamStatus = Literal[
    "reviewing", "booking", "booked", "guided", "resulted", "reported", "failed", "closed"
]
# A status only moves forward: a push recorded by the API and the workflow's own writes may
# arrive in either order.
STATUS_RANK: dict[str, int] = {
    "reviewing": 0,
    "booking": 1,
    "booked": 2,
    "guided": 3,
    "resulted": 4,
    "reported": 5,
    "failed": 6,
    "closed": 7,
}


def exam_workflow_id(booking_id: str) -> str:
    return f"exam:{booking_id}"


def dictionary_workflow_id(message_id: str) -> str:
    return f"exam-dictionary:{message_id}"


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ListedItem(_Msg):
    code: str
    name: str
    category: str
    required: bool
    reason: str


class ExamInput(_Msg):
    booking_id: str
    patient_id: str
    department_code: str
    hospital_code: str
    timezone: str
    exam_date: date
    # "reviewing": asked for on the platform (review, then book); "booked": booked at the
    # vendor directly, known to us first from its guide.
    stage: Literal["reviewing", "booked"]
    listed: list[ListedItem] = Field(default_factory=list)
    review_by: datetime | None = None
    # After the exam date, how long to wait for the report before alerting.
    report_wait_days: int = Field(default=30, ge=1, le=365)


class Review(_Msg):
    """The doctor's review: the optional items ticked (required ones are always booked)."""

    by: Annotated[Line, Field(min_length=1, max_length=64)]
    ticked: list[Line] = Field(default_factory=list, max_length=100)


class Pushed(_Msg):
    """The vendor pushed something about this exam (saved by the API before signalling)."""

    kind: Literal["guide", "results", "report"]
    exam_no: str


class BookExam(_Msg):
    booking_id: str
    items: list[ListedItem]


class Booked(_Msg):
    code: str  # "0" booked, "202" refused
    message: str
    exam_no: str | None = None
    vendor_booking_no: str | None = None


class ExamRecord(_Msg):
    """A projection write to the booking row; ``alert`` raises one for the department's
    ``alert_role`` (once per ``alert_kind``)."""

    booking_id: str
    status: ExamStatus
    ticked: list[str] | None = None
    booked_items: list[ListedItem] | None = None
    reviewed_by: str | None = None
    last_code: str | None = None
    last_message: str | None = None
    exam_no: str | None = None
    vendor_booking_no: str | None = None
    abnormal_items: list[str] | None = None
    followup_workflow_id: str | None = None
    alert: str | None = None
    alert_kind: str | None = None
    alert_role: str = "doctor"
    alert_level: Literal["info", "warning", "high"] = "warning"


class Assessment(_Msg):
    """What the results mean after the report: the abnormal items, and the follow-up run to
    start for them (None when all is normal or the plan is not published)."""

    abnormal_items: list[str]
    followup: RunInput | None = None
    followup_workflow_id: str | None = None


class ExamState(_Msg):
    status: ExamStatus
    review_by: datetime | None
    ticked: list[str]
    exam_no: str | None


class ExamRef(_Msg):
    booking_id: str


class DictionaryChange(_Msg):
    message_id: str
