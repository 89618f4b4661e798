"""Events the HIS pushes to our webhooks (HIS-1). Field names follow the HIS interface document."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

# HIS identifiers end up in workflow ids and URLs, so only a safe alphabet is accepted.
HisId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class _Event(BaseModel):
    # Hospitals add fields to their messages over time; unknown fields are ignored, not refused.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Diagnosis(_Event):
    code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=100)


class EncounterInfo(_Event):
    encounter_id: HisId
    kind: Literal["inpatient", "outpatient", "exam"]
    department_code: HisId
    department_name: str = Field(min_length=1, max_length=64)
    ward: str | None = Field(default=None, max_length=64)
    bed: str | None = Field(default=None, max_length=16)
    attending_doctor: str | None = Field(default=None, max_length=64)
    responsible_nurse: str | None = Field(default=None, max_length=64)
    admitted_at: AwareDatetime | None = None
    discharged_at: AwareDatetime
    diagnoses: list[Diagnosis] = Field(default_factory=list, max_length=50)


class DischargeEvent(_Event):
    event_id: str = Field(min_length=1, max_length=128)
    event_type: Literal["discharge"]
    occurred_at: AwareDatetime
    patient_id: HisId
    encounter: EncounterInfo
    # Demo and end-to-end tests only: how many times faster than real time the plan runs.
    demo_clock_speedup: float | None = Field(default=None, ge=1.0, le=10_000_000.0)
