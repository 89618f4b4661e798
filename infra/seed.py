"""Demo data for the embedded (development) set-up: staff accounts with well-known tokens and
well-known passwords, one or more for every role, to try the API and the workbench (/w).

Patients live in the HIS simulator's seed (simulators/his/seed.yaml) and reach the platform the
way real ones do, through discharge events.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from core.db import SessionFactory, transaction
from core.models import StaffRole, StaffUser, utcnow
from core.settings import Settings, get_settings
from services.identity import set_password
from services.staff import create_staff, token_digest


@dataclass(frozen=True)
class DemoStaff:
    name: str
    role: StaffRole
    department_code: str | None
    token: str
    # For password sign-in (POST /api/auth/sign-in); None: token only.
    username: str | None = None
    password: str | None = None


# Public on purpose and only ever created in development (the launcher refuses otherwise).
DEV_PASSWORD = "dev-password"  # noqa: S105 - public demo password, development only
DEMO_STAFF = (
    DemoStaff(
        "王护士", StaffRole.NURSE, "cardiology", "dev-nurse-cardiology",
        "nurse-cardiology", DEV_PASSWORD,
    ),
    DemoStaff(
        "赵医生", StaffRole.DOCTOR, "cardiology", "dev-doctor-cardiology",
        "doctor-cardiology", DEV_PASSWORD,
    ),
    DemoStaff(
        "骨科护士", StaffRole.NURSE, "orthopedics", "dev-nurse-orthopedics",
        "nurse-orthopedics", DEV_PASSWORD,
    ),
    DemoStaff("李药师", StaffRole.PHARMACIST, None, "dev-pharmacist", "pharmacist", DEV_PASSWORD),
    # The health-management centre: the exam process (PX-8).
    DemoStaff(
        "钱医生", StaffRole.DOCTOR, "health_management", "dev-doctor-health",
        "doctor-health", DEV_PASSWORD,
    ),
    DemoStaff(
        "周个案", StaffRole.CARE_MANAGER, None, "dev-care-manager", "care-manager", DEV_PASSWORD
    ),
    DemoStaff("孙会计", StaffRole.FINANCE, None, "dev-finance", "finance", DEV_PASSWORD),
    DemoStaff("管理员", StaffRole.ADMIN, None, "dev-admin", "admin", "dev-admin-password"),
)  # fmt: skip


async def seed_demo(sessions: SessionFactory, settings: Settings | None = None) -> list[DemoStaff]:
    """Creates the demo staff that are missing, and gives each its login if it has none yet
    (databases seeded before sign-in existed); running it again changes nothing."""
    settings = settings or get_settings()
    async with transaction(sessions) as session:
        for staff in DEMO_STAFF:
            found = await session.exec(
                select(StaffUser).where(StaffUser.token_sha256 == token_digest(staff.token))
            )
            user = found.first()
            if user is None:
                user, _ = await create_staff(
                    session,
                    name=staff.name,
                    role=staff.role,
                    department_code=staff.department_code,
                    token=staff.token,
                )
            if staff.username and staff.password and user.username is None:
                user.username = staff.username
                await set_password(settings, user, staff.password, now=utcnow(), must_change=False)
    return list(DEMO_STAFF)
