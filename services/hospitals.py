"""Per-hospital settings: the stored configuration, or the defaults when a hospital has none."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from core.hospitals import HospitalConfig
from core.models import Hospital
from core.settings import Settings


@dataclass(frozen=True)
class HospitalProfile:
    code: str
    name: str
    phone: str
    tz: ZoneInfo
    config: HospitalConfig


def default_profile(settings: Settings, code: str | None = None) -> HospitalProfile:
    return HospitalProfile(
        code=code or settings.default_hospital_code,
        name=settings.hospital_name,
        phone=settings.hospital_phone,
        tz=settings.tz,
        config=HospitalConfig(),
    )


async def hospital_profile(session: AsyncSession, settings: Settings, code: str) -> HospitalProfile:
    row = await session.get(Hospital, code)
    if row is None:
        return default_profile(settings, code)
    return HospitalProfile(
        code=row.code,
        name=row.name,
        phone=row.phone or settings.hospital_phone,
        tz=ZoneInfo(row.timezone),
        config=HospitalConfig.model_validate(row.config),
    )
