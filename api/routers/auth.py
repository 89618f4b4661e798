"""Staff sign-in (SEC-5): password (+ TOTP for administrators who enrolled) for a session token,
sign-out, who am I, changing one's own password, and TOTP enrolment.

Passwords travel only in request bodies and are never echoed: their fields carry no pydantic
constraints and are checked here instead, and ``redact_validation_errors`` keeps FastAPI from
repeating a request body (``input``) in the 422 answers of the credential routes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import AuthenticationDep, ContainerDep, SessionDep
from api.permissions import Permission, require
from core.models import StaffRole, StaffUser, utcnow
from services import audit
from services.identity import (
    MAX_PASSWORD_LENGTH,
    SignInRefused,
    change_password,
    matching_totp_step,
    new_totp_secret,
    password_problem,
    revoke_session,
    sign_in,
    totp_enabled,
    totp_uri,
)
from services.staff import StaffPrincipal

router = APIRouter(prefix="/api/auth", tags=["auth"])
AdminDep = Annotated[StaffPrincipal, Depends(require(Permission.STAFF_ADMIN))]


# Requests whose bodies may hold passwords; their validation errors never repeat the input.
CREDENTIAL_PATHS = ("/api/auth/", "/api/admin/staff")


async def redact_validation_errors(request: Request, exc: Exception) -> JSONResponse:
    """The app's 422 handler: FastAPI's, without ``input`` on the credential routes."""
    assert isinstance(exc, RequestValidationError)
    if not request.url.path.startswith(CREDENTIAL_PATHS):
        return await request_validation_exception_handler(request, exc)
    errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})


def invalid(field: str, message: str, kind: str = "value_error") -> NoReturn:
    raise RequestValidationError([{"type": kind, "loc": ("body", field), "msg": message}])


def _refusal(status_code: int, field: str, message: str, kind: str, **headers: str) -> NoReturn:
    raise HTTPException(
        status_code, [{"type": kind, "loc": ["body", field], "msg": message}], headers=headers
    )


class StaffMe(BaseModel):
    id: str
    name: str
    role: StaffRole
    username: str | None
    department_code: str | None
    ward: str | None
    staff_code: str | None
    data_scope: str
    totp_enabled: bool
    must_change_password: bool

    @classmethod
    def of(cls, user: StaffUser) -> StaffMe:
        return cls(
            id=user.id,
            name=user.name,
            role=StaffRole(user.role),
            username=user.username,
            department_code=user.department_code,
            ward=user.ward,
            staff_code=user.staff_code,
            data_scope=user.data_scope,
            totp_enabled=totp_enabled(user),
            must_change_password=user.must_change_password,
        )


class SignInIn(BaseModel):
    username: str = ""
    password: str = ""
    totp_code: str | None = None


class SignInOut(BaseModel):
    token: str
    expires_at: datetime
    staff: StaffMe


@router.post(
    "/sign-in",
    response_model=SignInOut,
    responses={401: {"description": "wrong credentials"}, 429: {"description": "locked"}},
)
async def post_sign_in(body: SignInIn, container: ContainerDep, session: SessionDep) -> SignInOut:
    if not body.username.strip():
        invalid("username", "请输入用户名", "missing")
    if not body.password:
        invalid("password", "请输入密码", "missing")
    if len(body.password) > MAX_PASSWORD_LENGTH or len(body.username) > 200:
        # Not worth hashing; answered like any wrong password.
        audit.record(
            session,
            actor_type="staff",
            actor_id=None,
            action="staff.sign_in_failed",
            target_type="staff",
            target_id="unknown",
            reason="overlong_input",
        )
        await session.commit()
        _refusal(401, "password", "用户名或密码错误", "invalid_credentials")
    try:
        done = await sign_in(
            session,
            container.settings,
            username=body.username,
            password=body.password,
            totp_code=body.totp_code,
            now=utcnow(),
        )
    except SignInRefused as refused:
        # The failure count and its audit entries are kept although the answer is a refusal.
        await session.commit()
        if refused.kind == "locked":
            minutes = container.settings.staff_lockout_minutes
            _refusal(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "username",
                f"登录失败次数过多，账号已暂时锁定（{minutes:g} 分钟），请稍后再试或联系管理员",
                "account_locked",
                **{"Retry-After": str(refused.retry_after_seconds or 60)},
            )
        if refused.kind == "totp_required":
            _refusal(401, "totp_code", "请输入动态验证码", "totp_required")
        if refused.kind == "totp_invalid":
            _refusal(401, "totp_code", "动态验证码错误", "totp_invalid")
        _refusal(401, "password", "用户名或密码错误", "invalid_credentials")
    await session.commit()
    return SignInOut(
        token=done.opened.token, expires_at=done.opened.row.expires_at, staff=StaffMe.of(done.user)
    )


@router.post("/sign-out", status_code=204)
async def post_sign_out(auth: AuthenticationDep, session: SessionDep) -> Response:
    if auth.session_id is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "静态 API 令牌不是会话，无法注销")
    await revoke_session(session, auth.session_id, utcnow())
    audit.record(
        session,
        actor_type="staff",
        actor_id=auth.staff.id,
        action="staff.signed_out",
        target_type="staff",
        target_id=auth.staff.id,
        session_id=auth.session_id,
    )
    await session.commit()
    return Response(status_code=204)


class MeOut(BaseModel):
    staff: StaffMe
    # None when authenticated by a static API token.
    session_expires_at: datetime | None


async def _account(session: SessionDep, staff_id: str, *, lock: bool = False) -> StaffUser:
    user = await session.get(StaffUser, staff_id, with_for_update=lock)
    if user is None:  # pragma: no cover - authentication just found it
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked token")
    return user


@router.get("/me", response_model=MeOut)
async def get_me(auth: AuthenticationDep, session: SessionDep) -> MeOut:
    user = await _account(session, auth.staff.id)
    return MeOut(staff=StaffMe.of(user), session_expires_at=auth.session_expires_at)


class PasswordChangeIn(BaseModel):
    current_password: str = ""
    new_password: str = ""


@router.post("/password", status_code=204)
async def post_password(
    body: PasswordChangeIn, auth: AuthenticationDep, container: ContainerDep, session: SessionDep
) -> Response:
    """Changes one's own password (also the one-time password an administrator set). Every
    other session of the account ends."""
    user = await _account(session, auth.staff.id, lock=True)
    if not body.current_password:
        invalid("current_password", "请输入当前密码", "missing")
    if problem := password_problem(body.new_password, user.username):
        invalid("new_password", problem)
    if body.new_password == body.current_password:
        invalid("new_password", "新密码不能与当前密码相同")
    outcome = await change_password(
        session,
        container.settings,
        user,
        current=body.current_password,
        new=body.new_password,
        keep_session=auth.session_id,
        now=utcnow(),
    )
    await session.commit()
    if outcome == "locked":
        _refusal(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "current_password",
            "失败次数过多，账号已暂时锁定，请稍后再试或联系管理员",
            "account_locked",
        )
    if outcome == "wrong_current":
        invalid("current_password", "当前密码不正确")
    return Response(status_code=204)


class TotpEnrolment(BaseModel):
    # Shown once: scan it into an authenticator app, then confirm with a code.
    otpauth_uri: str
    secret: str


@router.post("/totp/enrol", response_model=TotpEnrolment)
async def post_totp_enrol(
    admin: AdminDep, container: ContainerDep, session: SessionDep
) -> TotpEnrolment:
    """Starts (or restarts) an administrator's TOTP enrolment; sign-in needs no code until it
    is confirmed. Once confirmed, only another administrator can reset it."""
    user = await _account(session, admin.id, lock=True)
    if user.username is None or user.password_hash is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "该账号不用密码登录（静态令牌），动态验证码无从使用"
        )
    if totp_enabled(user):
        raise HTTPException(
            status.HTTP_409_CONFLICT, "动态验证码已启用；如需更换，请其他管理员重置后再登记"
        )
    secret = new_totp_secret()
    user.totp_secret = secret
    user.totp_last_counter = None
    audit.record(
        session,
        actor_type="staff",
        actor_id=admin.id,
        action="staff.totp_enrolment_started",
        target_type="staff",
        target_id=admin.id,
    )
    await session.commit()
    return TotpEnrolment(otpauth_uri=totp_uri(container.settings, user, secret), secret=secret)


class TotpConfirmIn(BaseModel):
    code: str = ""


class TotpConfirmed(BaseModel):
    totp_enabled: bool


@router.post("/totp/confirm", response_model=TotpConfirmed)
async def post_totp_confirm(
    body: TotpConfirmIn, admin: AdminDep, session: SessionDep
) -> TotpConfirmed:
    user = await _account(session, admin.id, lock=True)
    if totp_enabled(user):
        raise HTTPException(status.HTTP_409_CONFLICT, "动态验证码已启用")
    if user.totp_secret is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "请先登记（POST /api/auth/totp/enrol）")
    now = utcnow()
    step = matching_totp_step(user.totp_secret, body.code, now, None)
    if step is None:
        invalid("code", "动态验证码错误")
    user.totp_confirmed_at = now
    user.totp_last_counter = step
    audit.record(
        session,
        actor_type="staff",
        actor_id=admin.id,
        action="staff.totp_enabled",
        target_type="staff",
        target_id=admin.id,
    )
    await session.commit()
    return TotpConfirmed(totp_enabled=True)
