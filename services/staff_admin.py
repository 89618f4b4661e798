"""Staff administration (SEC-5, SEC-1): accounts, their data scope and their credentials.

Each operation checks everything before it writes anything, records itself in the audit trail
(never with a password, token or TOTP secret) and leaves the commit to the caller.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import DataScope, StaffRole, StaffUser
from core.settings import Settings
from services import audit
from services.identity import (
    generate_one_time_password,
    normalise_username,
    password_problem,
    revoke_sessions,
    set_password,
    username_problem,
)
from services.staff import token_digest


class StaffInputError(ValueError):
    """Bad input, as (field, message) pairs naming the request's fields."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


class StaffConflict(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def scope_problems(
    data_scope: DataScope,
    department_code: str | None,
    ward: str | None,
    staff_code: str | None,
) -> list[tuple[str, str]]:
    """What a data scope needs to mean anything (SEC-1)."""
    problems = []
    if data_scope in (DataScope.DEPARTMENT, DataScope.WARD) and not department_code:
        problems.append(("department_code", f"数据范围为 {data_scope} 时必须指定科室"))
    if data_scope == DataScope.WARD and not ward:
        problems.append(("ward", "数据范围为 ward 时必须指定病区"))
    if data_scope == DataScope.OWN and not staff_code:
        problems.append(("staff_code", "数据范围为 own 时必须指定工号"))
    return problems


def _is_person(role: StaffRole | str) -> bool:
    return role != StaffRole.INTEGRATION


@dataclass(frozen=True)
class Issued:
    """An account with the credentials just made for it, shown once and never stored."""

    user: StaffUser
    one_time_password: str | None = None
    api_token: str | None = None
    sessions_revoked: int = 0
    changes: dict[str, Any] = field(default_factory=dict)


async def _username_taken(session: AsyncSession, username: str, but: str | None = None) -> bool:
    statement = select(StaffUser.id).where(StaffUser.username == username)
    if but is not None:
        statement = statement.where(col(StaffUser.id) != but)
    return (await session.exec(statement)).first() is not None


async def create_account(
    session: AsyncSession,
    settings: Settings,
    *,
    actor_id: str,
    name: str,
    role: StaffRole,
    username: str | None,
    department_code: str | None,
    ward: str | None,
    staff_code: str | None,
    data_scope: DataScope | None,
    password: str | None,
    now: datetime,
) -> Issued:
    """A person gets a login name and a password (the one given, else a generated one), to be
    changed at first sign-in; an integration gets a static API token instead."""
    problems: list[tuple[str, str]] = []
    if username is not None:
        username = normalise_username(username)
    if data_scope is None:
        data_scope = DataScope.ORGANISATION if department_code is None else DataScope.DEPARTMENT
    if _is_person(role):
        if not username:
            problems.append(("username", "个人账号必须有用户名"))
        elif problem := username_problem(username):
            problems.append(("username", problem))
        if password is not None and (problem := password_problem(password, username)):
            problems.append(("password", problem))
    else:
        if username is not None:
            problems.append(("username", "集成账号用 API 令牌，不能设置用户名"))
        if password is not None:
            problems.append(("password", "集成账号用 API 令牌，不能设置密码"))
    problems += scope_problems(data_scope, department_code, ward, staff_code)
    if problems:
        raise StaffInputError(problems)
    if username and await _username_taken(session, username):
        raise StaffConflict("username", "用户名已被使用")

    user = StaffUser(
        name=name,
        role=role,
        username=username if _is_person(role) else None,
        department_code=department_code,
        ward=ward,
        staff_code=staff_code,
        data_scope=data_scope,
        created_at=now,
    )
    one_time_password = api_token = None
    if _is_person(role):
        if password is None:
            password = one_time_password = generate_one_time_password()
        await set_password(settings, user, password, now=now, must_change=True)
    else:
        api_token = secrets.token_urlsafe(32)
        user.token_sha256 = token_digest(api_token)
    session.add(user)
    await session.flush()
    audit.record(
        session,
        actor_type="staff",
        actor_id=actor_id,
        action="staff.created",
        target_type="staff",
        target_id=user.id,
        role=role.value,
        username=user.username,
        department_code=department_code,
        ward=ward,
        staff_code=staff_code,
        data_scope=DataScope(data_scope).value,
        credentials="api_token" if api_token else "password",
    )
    return Issued(user, one_time_password, api_token)


UPDATABLE = ("name", "role", "department_code", "ward", "staff_code", "data_scope")


async def update_account(
    session: AsyncSession, *, actor_id: str, user: StaffUser, changes: dict[str, Any]
) -> Issued:
    """Assigns department, ward, staff number, data scope, role or name; the result must be a
    consistent scope. A person stays a person and an integration an integration."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise StaffInputError([(f, "不能修改") for f in sorted(unknown)])
    after = {f: changes.get(f, getattr(user, f)) for f in UPDATABLE}
    problems: list[tuple[str, str]] = []
    if "role" in changes:
        if _is_person(after["role"]) != _is_person(user.role):
            problems.append(("role", "个人账号与集成账号之间不能互换角色，请新建账号"))
        elif actor_id == user.id and after["role"] != user.role:
            problems.append(("role", "不能修改自己的角色"))
    problems += scope_problems(
        DataScope(after["data_scope"]), after["department_code"], after["ward"], after["staff_code"]
    )
    if problems:
        raise StaffInputError(problems)
    diff = {
        f: {"from": _plain(getattr(user, f)), "to": _plain(after[f])}
        for f in UPDATABLE
        if _plain(getattr(user, f)) != _plain(after[f])
    }
    for f in diff:
        setattr(user, f, _plain(after[f]))
    if diff:
        audit.record(
            session,
            actor_type="staff",
            actor_id=actor_id,
            action="staff.updated",
            target_type="staff",
            target_id=user.id,
            changes=diff,
        )
    return Issued(user, changes=diff)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, DataScope | StaffRole) else value


async def deactivate_account(
    session: AsyncSession, *, actor_id: str, user: StaffUser, now: datetime
) -> Issued:
    """The account can no longer sign in or use its token; its sessions end at once."""
    if actor_id == user.id:
        raise StaffConflict("id", "不能停用自己的账号")
    was_active = user.active
    user.active = False
    revoked = await revoke_sessions(session, user.id, now)
    audit.record(
        session,
        actor_type="staff",
        actor_id=actor_id,
        action="staff.deactivated",
        target_type="staff",
        target_id=user.id,
        was_active=was_active,
        sessions_revoked=revoked,
    )
    return Issued(user, sessions_revoked=revoked)


async def rotate_credentials(
    session: AsyncSession,
    settings: Settings,
    *,
    actor_id: str,
    user: StaffUser,
    one_time_password: bool,
    api_token: bool,
    reset_totp: bool,
    now: datetime,
) -> Issued:
    """New one-time password and/or API token (shown once), optionally a TOTP reset; always
    ends every session of the account and lifts its lock."""
    problems: list[tuple[str, str]] = []
    if one_time_password and not _is_person(user.role):
        problems.append(("one_time_password", "集成账号没有密码"))
    if one_time_password and not user.username:
        problems.append(("one_time_password", "该账号没有用户名，先为其设置用户名"))
    if api_token and _is_person(user.role) and not settings.static_tokens_for_people:
        problems.append(("api_token", "生产环境中个人账号不能使用静态令牌"))
    if reset_totp and user.totp_secret is None:
        problems.append(("reset_totp", "该账号未启用动态验证码"))
    if problems:
        raise StaffInputError(problems)

    was_locked = user.locked_until is not None and user.locked_until > now
    new_password = new_token = None
    if one_time_password:
        new_password = generate_one_time_password()
        await set_password(settings, user, new_password, now=now, must_change=True)
    if api_token:
        new_token = secrets.token_urlsafe(32)
        user.token_sha256 = token_digest(new_token)
    if reset_totp:
        user.totp_secret = None
        user.totp_confirmed_at = None
        user.totp_last_counter = None
    user.failed_logins = 0
    user.locked_until = None
    revoked = await revoke_sessions(session, user.id, now)
    audit.record(
        session,
        actor_type="staff",
        actor_id=actor_id,
        action="staff.credentials_rotated",
        target_type="staff",
        target_id=user.id,
        one_time_password=one_time_password,
        api_token=api_token,
        reset_totp=reset_totp,
        unlocked=was_locked,
        sessions_revoked=revoked,
    )
    return Issued(user, new_password, new_token, sessions_revoked=revoked)


async def list_accounts(
    session: AsyncSession,
    *,
    role: StaffRole | None = None,
    department_code: str | None = None,
    ward: str | None = None,
    active: bool | None = None,
    search: str | None = None,
    limit: int = 200,
) -> Sequence[StaffUser]:
    statement = select(StaffUser)
    if role is not None:
        statement = statement.where(StaffUser.role == role)
    if department_code is not None:
        statement = statement.where(StaffUser.department_code == department_code)
    if ward is not None:
        statement = statement.where(StaffUser.ward == ward)
    if active is not None:
        statement = statement.where(StaffUser.active == active)
    if search:
        pattern = f"%{search.strip()}%"
        statement = statement.where(
            col(StaffUser.name).ilike(pattern) | col(StaffUser.username).ilike(pattern)
        )
    rows = await session.exec(
        statement.order_by(col(StaffUser.name), col(StaffUser.id)).limit(limit)
    )
    return rows.all()
