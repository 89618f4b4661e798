"""Staff administration (SEC-5, SEC-1), administrators only: create accounts, assign department,
ward, staff number, data scope and role, deactivate, and rotate credentials. New passwords and
tokens appear once, in the answer that made them; every change is audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, StringConstraints

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, require
from core.models import DataScope, StaffRole, StaffUser, utcnow
from core.validation import Key, Line
from services.identity import MAX_PASSWORD_LENGTH, totp_enabled
from services.staff import StaffPrincipal
from services.staff_admin import (
    Issued,
    StaffConflict,
    StaffInputError,
    create_account,
    deactivate_account,
    list_accounts,
    rotate_credentials,
    update_account,
)

router = APIRouter(prefix="/api/admin/staff", tags=["staff administration"])
AdminDep = Annotated[StaffPrincipal, Depends(require(Permission.STAFF_ADMIN))]

# One line (no control characters), trimmed, non-empty: names, wards, staff numbers, codes.
Short = Annotated[Line, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
DepartmentCode = Annotated[Short, StringConstraints(max_length=32)]


def _invalid(problems: list[tuple[str, str]]) -> NoReturn:
    raise RequestValidationError(
        [{"type": "value_error", "loc": ("body", f), "msg": m} for f, m in problems]
    )


def _conflict(exc: StaffConflict, where: str = "body") -> NoReturn:
    raise HTTPException(
        status.HTTP_409_CONFLICT,
        [{"type": "conflict", "loc": [where, exc.field], "msg": exc.message}],
    )


class StaffOut(BaseModel):
    id: str
    name: str
    role: StaffRole
    username: str | None
    department_code: str | None
    ward: str | None
    staff_code: str | None
    data_scope: DataScope
    active: bool
    created_at: datetime
    has_password: bool
    has_api_token: bool
    must_change_password: bool
    totp_enabled: bool
    locked_until: datetime | None  # only while locked
    last_sign_in_at: datetime | None

    @classmethod
    def of(cls, user: StaffUser, now: datetime) -> StaffOut:
        locked = user.locked_until if user.locked_until and user.locked_until > now else None
        return cls(
            id=user.id,
            name=user.name,
            role=StaffRole(user.role),
            username=user.username,
            department_code=user.department_code,
            ward=user.ward,
            staff_code=user.staff_code,
            data_scope=DataScope(user.data_scope),
            active=user.active,
            created_at=user.created_at,
            has_password=user.password_hash is not None,
            has_api_token=user.token_sha256 is not None,
            must_change_password=user.must_change_password,
            totp_enabled=totp_enabled(user),
            locked_until=locked,
            last_sign_in_at=user.last_sign_in_at,
        )


class StaffCreate(BaseModel):
    name: Short
    role: StaffRole
    # Required for people, absent for integrations; stored lower-case.
    username: str | None = None
    department_code: DepartmentCode | None = None
    ward: Short | None = None
    staff_code: Short | None = None
    # Default: the whole hospital without a department, else the department.
    data_scope: DataScope | None = None
    # An initial password; without one a one-time password is generated and shown once. Either
    # way the person changes it at first sign-in. (Checked in the handler, never echoed.)
    password: str | None = None


class StaffIssued(BaseModel):
    staff: StaffOut
    # Shown once; only hashes are stored.
    one_time_password: str | None = None
    api_token: str | None = None
    sessions_revoked: int = 0


def _issued(issued: Issued) -> StaffIssued:
    return StaffIssued(
        staff=StaffOut.of(issued.user, utcnow()),
        one_time_password=issued.one_time_password,
        api_token=issued.api_token,
        sessions_revoked=issued.sessions_revoked,
    )


@router.post("", response_model=StaffIssued, status_code=201)
async def post_staff(
    body: StaffCreate, admin: AdminDep, container: ContainerDep, session: SessionDep
) -> StaffIssued:
    if body.password is not None and len(body.password) > MAX_PASSWORD_LENGTH:
        _invalid([("password", f"密码最多 {MAX_PASSWORD_LENGTH} 个字符")])
    try:
        issued = await create_account(
            session,
            container.settings,
            actor_id=admin.id,
            name=body.name,
            role=body.role,
            username=body.username,
            department_code=body.department_code,
            ward=body.ward,
            staff_code=body.staff_code,
            data_scope=body.data_scope,
            password=body.password,
            now=utcnow(),
        )
    except StaffInputError as exc:
        _invalid(exc.problems)
    except StaffConflict as exc:
        _conflict(exc)
    await session.commit()
    return _issued(issued)


@router.get("", response_model=list[StaffOut])
async def get_staff_list(
    session: SessionDep,
    _: AdminDep,
    role: StaffRole | None = None,
    department_code: Key | None = None,
    ward: Key | None = None,
    active: bool | None = None,
    q: Annotated[Key | None, Query(max_length=64, description="name or username contains")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[StaffOut]:
    rows = await list_accounts(
        session,
        role=role,
        department_code=department_code,
        ward=ward,
        active=active,
        search=q,
        limit=limit,
    )
    now = utcnow()
    return [StaffOut.of(row, now) for row in rows]


async def _load(session: SessionDep, staff_id: str, *, lock: bool = False) -> StaffUser:
    user = await session.get(StaffUser, staff_id, with_for_update=lock)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    return user


@router.get("/{staff_id}", response_model=StaffOut)
async def get_staff(staff_id: Key, session: SessionDep, _: AdminDep) -> StaffOut:
    return StaffOut.of(await _load(session, staff_id), utcnow())


class StaffPatch(BaseModel):
    """Only the fields present change; department_code, ward and staff_code may be null."""

    name: Short | None = None
    role: StaffRole | None = None
    department_code: DepartmentCode | None = None
    ward: Short | None = None
    staff_code: Short | None = None
    data_scope: DataScope | None = None


@router.patch("/{staff_id}", response_model=StaffIssued)
async def patch_staff(
    staff_id: Key, body: StaffPatch, admin: AdminDep, session: SessionDep
) -> StaffIssued:
    changes: dict[str, Any] = {f: getattr(body, f) for f in body.model_fields_set}
    if missing := [f for f in ("name", "role", "data_scope") if f in changes and not changes[f]]:
        _invalid([(f, "不能为空") for f in missing])
    user = await _load(session, staff_id, lock=True)
    try:
        issued = await update_account(session, actor_id=admin.id, user=user, changes=changes)
    except StaffInputError as exc:
        _invalid(exc.problems)
    await session.commit()
    return _issued(issued)


@router.post("/{staff_id}/deactivate", response_model=StaffIssued)
async def post_deactivate(staff_id: Key, admin: AdminDep, session: SessionDep) -> StaffIssued:
    user = await _load(session, staff_id, lock=True)
    try:
        issued = await deactivate_account(session, actor_id=admin.id, user=user, now=utcnow())
    except StaffConflict as exc:
        _conflict(exc, "path")
    await session.commit()
    return _issued(issued)


class CredentialsIn(BaseModel):
    """Every rotation also ends the account's sessions and lifts a lock."""

    one_time_password: bool = False
    api_token: bool = False
    reset_totp: bool = False


@router.post("/{staff_id}/credentials", response_model=StaffIssued)
async def post_credentials(
    staff_id: Key,
    body: CredentialsIn,
    admin: AdminDep,
    container: ContainerDep,
    session: SessionDep,
) -> StaffIssued:
    user = await _load(session, staff_id, lock=True)
    try:
        issued = await rotate_credentials(
            session,
            container.settings,
            actor_id=admin.id,
            user=user,
            one_time_password=body.one_time_password,
            api_token=body.api_token,
            reset_totp=body.reset_totp,
            now=utcnow(),
        )
    except StaffInputError as exc:
        _invalid(exc.problems)
    await session.commit()
    return _issued(issued)
