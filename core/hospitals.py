"""Per-hospital settings (one deployment may serve several hospitals of a district).

Plain pydantic, no I/O: the database stores ``Hospital.config`` as JSON validated by this model,
and workflows receive the parts they need in their inputs.
"""

from __future__ import annotations

from datetime import time
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class QuietHours(BaseModel):
    """Non-urgent messages are held while the local clock is inside [start, end)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    start: time = time(22, 0)
    end: time = time(7, 0)

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


class HospitalConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    prescriptions: PrescriptionConfig = Field(default_factory=PrescriptionConfig)
