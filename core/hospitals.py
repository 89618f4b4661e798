"""Per-hospital settings (one deployment may serve several hospitals of a district).

Plain pydantic, no I/O: the database stores ``Hospital.config`` as JSON validated by this model,
and workflows receive the parts they need in their inputs.
"""

from __future__ import annotations

from datetime import time
from typing import Self

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


class HospitalConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    quiet_hours: QuietHours = Field(default_factory=QuietHours)
