"""Per-hospital settings (one deployment may serve several hospitals of a district).

Plain pydantic, no I/O: the database stores ``Hospital.config`` as JSON validated by this model,
and workflows receive the parts they need in their inputs.
"""

from __future__ import annotations

from datetime import date, time
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.validation import LocalTime


class QuietHours(BaseModel):
    """Non-urgent messages are held while the local clock is inside [start, end)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    start: LocalTime = time(22, 0)
    end: LocalTime = time(7, 0)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.enabled and self.start == self.end:
            raise ValueError("quiet hours start and end must differ")
        return self


RxStatus = Literal[
    "reviewing",  # waiting for a pharmacist (or the deadline)
    "returned",  # rejected: back with the doctor, who edits or cancels
    "cancelled",
    "approved",  # awaiting payment
    "paid",
    "dispatched",  # sent to a service enterprise
    "dispensing",
    "decocting",
    "shipped",
    "delivered",
    "ready_for_pickup",
    "picked_up",
    "refunded",
]
# What the prescription list filters by and the statistics count: every status, and
# "completed", the statuses in which the patient has the medicine (delivered or picked up).
RxStatusFilter = Literal[
    "reviewing",
    "returned",
    "cancelled",
    "approved",
    "paid",
    "dispatched",
    "dispensing",
    "decocting",
    "shipped",
    "delivered",
    "ready_for_pickup",
    "picked_up",
    "refunded",
    "completed",
]
RX_STATUS_GROUPS: dict[str, tuple[RxStatus, ...]] = {"completed": ("delivered", "picked_up")}


class ReviewPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # RX-4: with no pharmacist's decision by then, the system concludes.
    deadline_seconds: int = Field(default=120, ge=1, le=86_400)
    # A prescription with findings is never approved silently: by default it goes back to the
    # doctor with the findings at the deadline; "keep_waiting" leaves it for a pharmacist.
    on_timeout_with_findings: Literal["return_to_doctor", "keep_waiting"] = "return_to_doctor"
    # A returned prescription the doctor neither edits nor cancels is cancelled after this.
    revision_window_hours: int = Field(default=72, ge=1, le=24 * 30)
    # An approved prescription left unpaid is cancelled after this.
    payment_window_hours: int = Field(default=72, ge=1, le=24 * 30)


DeliveryMode = Literal["delivery", "pickup"]


def _both_modes() -> list[DeliveryMode]:
    return ["delivery", "pickup"]


class DispatchRule(BaseModel):
    """The first rule whose conditions match picks the service enterprise (RX-6)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enterprise: str = Field(min_length=1, max_length=32)
    delivery_modes: list[DeliveryMode] = Field(default_factory=_both_modes)
    # None: either; True/False: only prescriptions that do / do not need decoction.
    decoction: bool | None = None


def _refundable_default() -> list[RxStatus]:
    # RX-7 default: refundable until the herbs have left the enterprise.
    return ["paid", "dispatched", "dispensing", "decocting"]


class PrescriptionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    review: ReviewPolicy = Field(default_factory=ReviewPolicy)
    refundable_statuses: list[RxStatus] = Field(default_factory=_refundable_default)
    dispatch_rules: list[DispatchRule] = Field(
        default_factory=lambda: [DispatchRule(enterprise="ENT-DEMO")], min_length=1
    )


class PaymentPolicy(BaseModel):
    """Timings of the payment and refund sagas (PAY-3, PAY-7)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # How long the patient has to pay the self-pay part once the provider order exists; after
    # that the order is closed and everything compensated.
    pay_window_seconds: int = Field(default=900, ge=5, le=7 * 86_400)
    # Polling the provider, between notifications that may never come.
    poll_interval_seconds: int = Field(default=15, ge=1, le=3600)
    # One external call; a worker killed mid-call is noticed after this long.
    call_timeout_seconds: int = Field(default=30, ge=1, le=600)
    # A step before the patient's money moves (pre-settlement, insurance, opening the provider
    # order) is retried this long while the party is unreachable, then the saga compensates.
    forward_give_up_seconds: int = Field(default=300, ge=5, le=86_400)
    # Confirming with the HIS once money has moved is retried this long before compensating.
    confirm_give_up_seconds: int = Field(default=86_400, ge=10, le=30 * 86_400)


class PaymentConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: PaymentPolicy = Field(default_factory=PaymentPolicy)
    # An online consultation no doctor accepts within this long is refunded (PAY-7).
    consultation_accept_seconds: int = Field(default=1800, ge=10, le=7 * 86_400)


class ComplaintPolicy(BaseModel):
    """Timers of a complaint case (SAT-3) and the working-day calendar they count in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Not acknowledged by the department in this long: escalated to the department head.
    acknowledge_hours: int = Field(default=24, ge=1, le=24 * 14)
    # Not resolved this many working days after it was opened: escalated one level again (to
    # the quality office once the department head has it).
    resolve_working_days: int = Field(default=5, ge=1, le=60)
    # The patient is asked to rate the outcome; unrated, the case closes after this.
    rating_days: int = Field(default=7, ge=1, le=60)
    # Public holidays (not working days) and weekend days worked in their place (调休).
    holidays: list[date] = Field(default_factory=list, max_length=400)
    workdays: list[date] = Field(default_factory=list, max_length=400)


class NursingPolicy(BaseModel):
    """Timers of a home-nursing order (NUR-2)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Open for a qualified nurse to take (接单) this long after payment; then dispatched.
    take_window_seconds: int = Field(default=1800, ge=5, le=86_400)
    # A visit still under way this long past the item's expected duration alarms (预警).
    overrun_grace_seconds: int = Field(default=900, ge=0, le=86_400)
    # The patient's signature at the end is waited for this long, then the order goes on.
    signature_wait_seconds: int = Field(default=86_400, ge=5, le=7 * 86_400)
    # The patient may rate the service this long after the nursing record is written.
    rating_window_seconds: int = Field(default=7 * 86_400, ge=5, le=60 * 86_400)


class HospitalConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    prescriptions: PrescriptionConfig = Field(default_factory=PrescriptionConfig)
    payments: PaymentConfig = Field(default_factory=PaymentConfig)
    complaints: ComplaintPolicy = Field(default_factory=ComplaintPolicy)
    nursing: NursingPolicy = Field(default_factory=NursingPolicy)
