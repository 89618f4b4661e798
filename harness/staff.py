"""Staff accounts for tests and benchmarks."""

from __future__ import annotations

from core.db import SessionFactory, transaction
from core.models import DataScope, StaffRole
from services.staff import create_staff


async def add_staff(
    sessions: SessionFactory,
    role: StaffRole = StaffRole.NURSE,
    department_code: str | None = "cardiology",
    name: str = "王护士",
    *,
    ward: str | None = None,
    staff_code: str | None = None,
    data_scope: DataScope | None = None,
) -> str:
    async with transaction(sessions) as session:
        _, token = await create_staff(
            session,
            name=name,
            role=role,
            department_code=department_code,
            ward=ward,
            staff_code=staff_code,
            data_scope=data_scope,
        )
    return token
