"""Staff accounts and their API tokens. Only a SHA-256 of each token is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import StaffRole, StaffUser


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class StaffPrincipal:
    id: str
    name: str
    role: StaffRole
    # None: sees every department.
    department_code: str | None

    def can_see(self, department_code: str) -> bool:
        return self.department_code is None or self.department_code == department_code


async def authenticate(session: AsyncSession, token: str) -> StaffPrincipal | None:
    result = await session.exec(
        select(StaffUser).where(StaffUser.token_sha256 == token_digest(token), StaffUser.active)
    )
    user = result.first()
    if user is None:
        return None
    return StaffPrincipal(user.id, user.name, StaffRole(user.role), user.department_code)


async def create_staff(
    session: AsyncSession,
    *,
    name: str,
    role: StaffRole,
    department_code: str | None,
    token: str | None = None,
) -> tuple[StaffUser, str]:
    """Adds a staff user; returns it with the plain token, which is shown once and not stored."""
    token = token or secrets.token_urlsafe(32)
    user = StaffUser(
        name=name, role=role, department_code=department_code, token_sha256=token_digest(token)
    )
    session.add(user)
    await session.flush()
    return user, token
