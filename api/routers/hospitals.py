"""Hospitals served by this deployment and their settings (quiet hours; review and refund rules
come with the prescription and payment processes). Administrators only."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, require
from core.hospitals import HospitalConfig
from core.models import Hospital, utcnow
from core.validation import Key, Line
from services import audit
from services.hospitals import hospital_profile
from services.staff import StaffPrincipal

router = APIRouter(prefix="/api/hospitals", tags=["hospitals"])
AdminDep = Annotated[StaffPrincipal, Depends(require(Permission.HOSPITALS_ADMIN))]


class HospitalIn(BaseModel):
    name: Annotated[Line, Field(min_length=1, max_length=100)]
    phone: Line | None = Field(default=None, max_length=32)
    timezone: Line = "Asia/Shanghai"
    config: HospitalConfig = Field(default_factory=HospitalConfig)


class HospitalOut(HospitalIn):
    code: str


@router.get("/{code}", response_model=HospitalOut)
async def get_hospital(
    code: Key, container: ContainerDep, session: SessionDep, _: AdminDep
) -> HospitalOut:
    profile = await hospital_profile(session, container.settings, code)
    return HospitalOut(
        code=profile.code,
        name=profile.name,
        phone=profile.phone,
        timezone=profile.tz.key,
        config=profile.config,
    )


@router.put("/{code}", response_model=HospitalOut)
async def put_hospital(
    code: Key, body: HospitalIn, session: SessionDep, admin: AdminDep
) -> HospitalOut:
    try:
        ZoneInfo(body.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "timezone"), "msg": "unknown time zone"}]
        ) from exc
    row = await session.get(Hospital, code, with_for_update=True)
    if row is None:
        row = Hospital(code=code, name=body.name)
        session.add(row)
    row.name, row.phone, row.timezone = body.name, body.phone, body.timezone
    row.config = body.config.model_dump(mode="json")
    row.updated_at = utcnow()
    audit.record(
        session,
        actor_type="staff",
        actor_id=admin.id,
        action="hospital.configured",
        target_type="hospital",
        target_id=code,
        config=row.config,
    )
    await session.commit()
    return HospitalOut(code=code, **body.model_dump())
