"""Staff accounts for tests and benchmarks."""

from __future__ import annotations

from core.db import SessionFactory, transaction
from core.models import DataScope, StaffRole, StaffUser, utcnow
from core.settings import Settings
from services.identity import set_password
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


async def add_person(
    sessions: SessionFactory,
    settings: Settings,
    *,
    username: str,
    password: str,
    role: StaffRole = StaffRole.NURSE,
    department_code: str | None = "cardiology",
    name: str = "王护士",
    must_change_password: bool = False,
) -> str:
    """A person who signs in with a password (and has no static token); returns their id."""
    async with transaction(sessions) as session:
        user = StaffUser(
            name=name,
            role=role,
            username=username,
            department_code=department_code,
            data_scope=DataScope.ORGANISATION if department_code is None else DataScope.DEPARTMENT,
        )
        await set_password(settings, user, password, now=utcnow(), must_change=must_change_password)
        session.add(user)
    return user.id
