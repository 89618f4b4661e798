"""Demo data for the embedded (development) set-up: staff accounts with well-known tokens.

Patients live in the HIS simulator's seed (simulators/his/seed.yaml) and reach the platform the
way real ones do, through discharge events.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from core.db import SessionFactory, transaction
from core.models import StaffRole, StaffUser
from services.staff import create_staff, token_digest


@dataclass(frozen=True)
class DemoStaff:
    name: str
    role: StaffRole
    department_code: str | None
    token: str


# Public on purpose and only ever created in development (the launcher refuses otherwise).
DEMO_STAFF = (
    DemoStaff("王护士", StaffRole.NURSE, "cardiology", "dev-nurse-cardiology"),
    DemoStaff("赵医生", StaffRole.DOCTOR, "cardiology", "dev-doctor-cardiology"),
    DemoStaff("骨科护士", StaffRole.NURSE, "orthopedics", "dev-nurse-orthopedics"),
    DemoStaff("李药师", StaffRole.PHARMACIST, None, "dev-pharmacist"),
    DemoStaff("管理员", StaffRole.ADMIN, None, "dev-admin"),
)


async def seed_demo(sessions: SessionFactory) -> list[DemoStaff]:
    """Creates the demo staff that are missing; running it again changes nothing."""
    async with transaction(sessions) as session:
        for staff in DEMO_STAFF:
            found = await session.exec(
                select(StaffUser).where(StaffUser.token_sha256 == token_digest(staff.token))
            )
            if found.first() is None:
                await create_staff(
                    session,
                    name=staff.name,
                    role=staff.role,
                    department_code=staff.department_code,
                    token=staff.token,
                )
    return list(DEMO_STAFF)
