"""Staff accounts and how a request proves who it is: a sign-in session's token or a static API
token. Only a SHA-256 of either is stored (sign-in itself: services/identity.py)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import DataScope, StaffRole, StaffSession, StaffUser
from core.settings import Settings


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


def principal_of(user: StaffUser) -> StaffPrincipal:
    return StaffPrincipal(
        user.id,
        user.name,
        StaffRole(user.role),
        user.department_code,
        user.ward,
        user.staff_code,
        DataScope(user.data_scope),
    )


@dataclass(frozen=True)
class Authentication:
    staff: StaffPrincipal
    # The sign-in session the bearer token belongs to; None for a static API token.
    session_id: str | None = None
    session_expires_at: datetime | None = None
    must_change_password: bool = False
    # The session's last_seen_at is old enough to be refreshed (at most once a minute).
    stale: bool = False


class NotAuthenticated(Exception):
    """The bearer token is no good; the message says why, for the person holding it."""


SESSION_TOUCH_INTERVAL = timedelta(minutes=1)


async def authenticate(
    session: AsyncSession, token: str, *, settings: Settings, now: datetime
) -> Authentication:
    """A session token from sign-in, or a static API token. Static tokens of people (every role
    but integration) are refused in production, where people sign in (SEC-5)."""
    digest = token_digest(token)
    found = await session.exec(
        select(StaffSession, StaffUser)
        .join(StaffUser, col(StaffUser.id) == col(StaffSession.staff_id))
        .where(StaffSession.token_sha256 == digest)
    )
    signed_in = found.first()
    if signed_in is not None:
        row, user = signed_in
        if row.revoked_at is not None or not user.active:
            raise NotAuthenticated("会话已结束，请重新登录")
        idle = timedelta(minutes=settings.staff_session_idle_minutes)
        if now >= row.expires_at or now - row.last_seen_at >= idle:
            raise NotAuthenticated("会话已过期，请重新登录")
        return Authentication(
            principal_of(user),
            session_id=row.id,
            session_expires_at=row.expires_at,
            must_change_password=user.must_change_password,
            stale=now - row.last_seen_at >= SESSION_TOUCH_INTERVAL,
        )
    result = await session.exec(
        select(StaffUser).where(StaffUser.token_sha256 == digest, StaffUser.active)
    )
    holder = result.first()
    if holder is None:
        raise NotAuthenticated("invalid or revoked token")
    if holder.role != StaffRole.INTEGRATION and not settings.static_tokens_for_people:
        raise NotAuthenticated(
            "个人账号不能使用静态令牌，请用用户名和密码登录（POST /api/auth/sign-in）"
        )
    return Authentication(principal_of(holder))


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
