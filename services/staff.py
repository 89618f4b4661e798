"""Staff accounts and their API tokens. Only a SHA-256 of each token is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import DataScope, StaffRole, StaffUser


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class StaffPrincipal:
    id: str
    name: str
    role: StaffRole
    # None: sees every department.
    department_code: str | None
    ward: str | None = None
    staff_code: str | None = None
    # Which patients they see: services.scope has the rules.
    data_scope: DataScope = DataScope.DEPARTMENT


async def authenticate(session: AsyncSession, token: str) -> StaffPrincipal | None:
    result = await session.exec(
        select(StaffUser).where(StaffUser.token_sha256 == token_digest(token), StaffUser.active)
    )
    user = result.first()
    if user is None:
        return None
    return StaffPrincipal(
        user.id,
        user.name,
        StaffRole(user.role),
        user.department_code,
        user.ward,
        user.staff_code,
        DataScope(user.data_scope),
    )


async def create_staff(
    session: AsyncSession,
    *,
    name: str,
    role: StaffRole,
    department_code: str | None,
    ward: str | None = None,
    staff_code: str | None = None,
    data_scope: DataScope | None = None,
    token: str | None = None,
) -> tuple[StaffUser, str]:
    """Adds a staff user; returns it with the plain token, which is shown once and not stored.
    Without a data scope: the whole hospital if no department is given, else the department."""
    token = token or secrets.token_urlsafe(32)
    if data_scope is None:
        data_scope = DataScope.ORGANISATION if department_code is None else DataScope.DEPARTMENT
    user = StaffUser(
        name=name,
        role=role,
        department_code=department_code,
        ward=ward,
        staff_code=staff_code,
        data_scope=data_scope,
        token_sha256=token_digest(token),
    )
    session.add(user)
    await session.flush()
    return user, token
