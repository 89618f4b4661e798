"""Staff accounts and how a request proves who it is: a sign-in session's token or a static API
token. Only a SHA-256 of either is stored (sign-in itself: services/identity.py)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import DataScope, StaffRole, StaffSession, StaffUser
from core.settings import Settings

SESSION_TOKEN_PREFIX = "cps_"  # noqa: S105 - a prefix that makes leaked tokens recognisable


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


class StaffFields(Protocol):
    """What a principal is made of: a StaffUser, or a row of ``PRINCIPAL_COLUMNS``."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def department_code(self) -> str | None: ...
    @property
    def ward(self) -> str | None: ...
    @property
    def staff_code(self) -> str | None: ...
    @property
    def data_scope(self) -> str: ...


# Read as plain columns on every request: an ORM object per request costs more than the query.
PRINCIPAL_COLUMNS = (
    col(StaffUser.id),
    col(StaffUser.name),
    col(StaffUser.role),
    col(StaffUser.department_code),
    col(StaffUser.ward),
    col(StaffUser.staff_code),
    col(StaffUser.data_scope),
)


def principal_of(user: StaffFields) -> StaffPrincipal:
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


# Built once: every authenticated request runs one of them, and building a select of a dozen
# columns cost as much CPU as running it (issue 15).
_SIGNED_IN: Any = (
    sa.select(
        *PRINCIPAL_COLUMNS,
        col(StaffUser.active),
        col(StaffUser.must_change_password),
        col(StaffSession.id).label("session_id"),
        col(StaffSession.expires_at),
        col(StaffSession.last_seen_at),
        col(StaffSession.revoked_at),
    )
    .select_from(StaffSession)
    .join(StaffUser, col(StaffUser.id) == col(StaffSession.staff_id))
    .where(col(StaffSession.token_sha256) == sa.bindparam("digest"))
)
_STATIC: Any = sa.select(*PRINCIPAL_COLUMNS).where(
    col(StaffUser.token_sha256) == sa.bindparam("digest"), col(StaffUser.active)
)


async def authenticate(
    session: AsyncSession, token: str, *, settings: Settings, now: datetime
) -> Authentication:
    """A session token from sign-in, or a static API token. Static tokens of people (every role
    but integration) are refused in production, where people sign in (SEC-5)."""
    digest = token_digest(token)
    # Sign-in tokens carry the prefix and static ones seldom do: each is looked for where it
    # most likely is first, so a machine's call costs one query, not a miss and then a hit.
    signed_in_first = token.startswith(SESSION_TOKEN_PREFIX)
    if signed_in_first and (found := await _signed_in(session, digest, settings, now)):
        return found
    holder = (await session.exec(_STATIC, params={"digest": digest})).first()
    if holder is not None:
        if holder.role != StaffRole.INTEGRATION and not settings.static_tokens_for_people:
            raise NotAuthenticated(
                "个人账号不能使用静态令牌，请用用户名和密码登录（POST /api/auth/sign-in）"
            )
        return Authentication(principal_of(holder))
    if not signed_in_first and (found := await _signed_in(session, digest, settings, now)):
        return found
    raise NotAuthenticated("invalid or revoked token")


async def _signed_in(
    session: AsyncSession, digest: str, settings: Settings, now: datetime
) -> Authentication | None:
    row = (await session.exec(_SIGNED_IN, params={"digest": digest})).first()
    if row is None:
        return None
    if row.revoked_at is not None or not row.active:
        raise NotAuthenticated("会话已结束，请重新登录")
    idle = timedelta(minutes=settings.staff_session_idle_minutes)
    if now >= row.expires_at or now - row.last_seen_at >= idle:
        raise NotAuthenticated("会话已过期，请重新登录")
    return Authentication(
        principal_of(row),
        session_id=row.session_id,
        session_expires_at=row.expires_at,
        must_change_password=row.must_change_password,
        stale=now - row.last_seen_at >= SESSION_TOUCH_INTERVAL,
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
