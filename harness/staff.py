"""Staff accounts for tests and benchmarks."""

from __future__ import annotations

from core.db import SessionFactory, transaction
from core.models import StaffRole
from services.staff import create_staff


async def add_staff(
    sessions: SessionFactory,
    role: StaffRole = StaffRole.NURSE,
    department_code: str | None = "cardiology",
    name: str = "王护士",
) -> str:
    async with transaction(sessions) as session:
        _, token = await create_staff(
            session, name=name, role=role, department_code=department_code
        )
    return token
