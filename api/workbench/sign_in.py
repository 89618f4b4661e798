"""Signing in to the workbench and out again, the landing page, and the workbench's own
front-end files (ECharts and htmx from the npm registry at set-up time; our CSS and script)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from api.deps import ContainerDep, SessionDep
from api.form_body import BodyTooLarge, MalformedBody, read_form
from api.workbench.auth import (
    COOKIE,
    COOKIE_PATH,
    MAX_FORM_BYTES,
    PageError,
    SignedInDep,
    ViewerDep,
    check_origin,
    posted_form,
)
from api.workbench.render import NAVIGATION, render
from core.models import StaffUser, utcnow
from core.templates import TEMPLATES_DIR
from services import audit
from services.identity import (
    MAX_PASSWORD_LENGTH,
    SignInRefused,
    change_password,
    password_problem,
    revoke_session,
    sign_in,
)

router = APIRouter(include_in_schema=False)

ROOT = Path(__file__).resolve().parents[2]
# Served by name only: nothing else on disk is reachable through this route.
STATIC_FILES = {
    "echarts.min.js": ROOT / "web/node_modules/echarts/dist/echarts.min.js",
    "htmx.min.js": ROOT / "web/node_modules/htmx.org/dist/htmx.min.js",
    "workbench.css": TEMPLATES_DIR / "workbench/static/workbench.css",
    "workbench.js": TEMPLATES_DIR / "workbench/static/workbench.js",
    "enrolment.js": TEMPLATES_DIR / "workbench/static/enrolment.js",
    "signature_pad.js": TEMPLATES_DIR / "pages/signature_pad.js",
}


@router.get("/w/static/{name}")
async def static_file(name: str) -> Response:
    path = STATIC_FILES.get(name)
    if path is None or not path.is_file():
        return Response("not found", status.HTTP_404_NOT_FOUND, media_type="text/plain")
    # Pages ask for ?v=<release>, so a long cache never serves an old file after an upgrade.
    return FileResponse(path, headers={"Cache-Control": "private, max-age=86400"})


SIGNED_OUT_REASONS = frozenset({"会话已结束，请重新登录", "会话已过期，请重新登录"})


def _safe_next(value: str) -> str:
    """Only a workbench path on this site: never another host after signing in."""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/w/") or "\\" in value:
        return "/w"
    return value


@router.get("/w/sign-in", response_class=HTMLResponse)
async def sign_in_page(
    request: Request,
    container: ContainerDep,
    next_path: Annotated[str, Query(alias="next", max_length=500)] = "/w",
    why: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    # Only the reasons this app gives: a link cannot put words of its own on the page.
    shown = why if why in SIGNED_OUT_REASONS else ""
    return render(
        container, request, "sign_in.html", None, next=_safe_next(next_path), why=shown, errors={}
    )


@router.post("/w/sign-in", response_class=HTMLResponse)
async def sign_in_submit(
    request: Request, container: ContainerDep, session: SessionDep
) -> Response:
    try:
        form = await read_form(request, MAX_FORM_BYTES, max_files=0)
    except (BodyTooLarge, MalformedBody):
        raise PageError(status.HTTP_400_BAD_REQUEST, "提交的内容无法识别") from None
    check_origin(request)
    fields = {key: str(value) for key, value in form.items()}
    username = fields.get("username", "").strip()
    password = fields.get("password", "")
    totp = fields.get("totp_code", "").strip() or None
    target = _safe_next(fields.get("next", "/w"))

    def again(code: int, errors: dict[str, str]) -> HTMLResponse:
        return render(
            container,
            request,
            "sign_in.html",
            None,
            code,
            next=target,
            why="",
            errors=errors,
            username=username[:200],
            totp_needed="totp_code" in errors,
        )

    errors = {}
    if not username:
        errors["username"] = "请输入用户名"
    if not password:
        errors["password"] = "请输入密码"  # noqa: S105 - a message, not a password
    if errors:
        return again(status.HTTP_422_UNPROCESSABLE_CONTENT, errors)
    if len(password) > MAX_PASSWORD_LENGTH or len(username) > 200:
        return again(status.HTTP_401_UNAUTHORIZED, {"password": "用户名或密码错误"})
    try:
        done = await sign_in(
            session,
            container.settings,
            username=username,
            password=password,
            totp_code=totp,
            now=utcnow(),
        )
    except SignInRefused as refused:
        await session.commit()  # the failure count and its audit entry are kept
        texts = {
            "locked": ("username", "登录失败次数过多，账号已暂时锁定，请稍后再试或联系管理员"),
            "totp_required": ("totp_code", "请输入动态验证码"),
            "totp_invalid": ("totp_code", "动态验证码错误"),
        }
        field, text = texts.get(refused.kind, ("password", "用户名或密码错误"))
        code = (
            status.HTTP_429_TOO_MANY_REQUESTS
            if refused.kind == "locked"
            else status.HTTP_401_UNAUTHORIZED
        )
        return again(code, {field: text})
    await session.commit()
    response = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        COOKIE,
        done.opened.token,
        max_age=int((done.opened.row.expires_at - utcnow()).total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=container.settings.public_base_url.startswith("https://"),
    )
    return response


@router.post("/w/sign-out")
async def sign_out(request: Request, session: SessionDep, seen: SignedInDep) -> Response:
    await posted_form(request, seen)
    if seen.auth.session_id is not None:
        await revoke_session(session, seen.auth.session_id, utcnow())
        audit.record(
            session,
            actor_type="staff",
            actor_id=seen.staff.id,
            action="staff.signed_out",
            target_type="staff",
            target_id=seen.staff.id,
            session_id=seen.auth.session_id,
        )
        await session.commit()
    response = RedirectResponse("/w/sign-in", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


@router.get("/w")
async def landing(seen: ViewerDep, container: ContainerDep, request: Request) -> Response:
    """The first page of the staff member's day."""
    for item in NAVIGATION:
        if seen.can(item.permission):
            return RedirectResponse(item.path, status.HTTP_303_SEE_OTHER)
    return render(container, request, "error.html", seen, heading="暂无可用页面", detail="")


@router.get("/w/password", response_class=HTMLResponse)
async def password_page(
    request: Request, container: ContainerDep, seen: SignedInDep
) -> HTMLResponse:
    return render(container, request, "password.html", seen, errors={})


@router.post("/w/password", response_class=HTMLResponse)
async def password_submit(
    request: Request, container: ContainerDep, session: SessionDep, seen: SignedInDep
) -> Response:
    """Changing one's own password (first of all the one-time password an administrator set);
    every other session of the account ends, this one goes on."""
    fields = await posted_form(request, seen)
    current, new = fields.get("current_password", ""), fields.get("new_password", "")
    user = await session.get(StaffUser, seen.staff.id, with_for_update=True)
    if user is None:
        raise PageError(status.HTTP_404_NOT_FOUND, "账号不存在")
    errors: dict[str, str] = {}
    if not current:
        errors["current_password"] = "请输入当前密码"  # noqa: S105 - a message
    problem = password_problem(new, user.username)
    if problem:
        errors["new_password"] = problem
    elif new == current:
        errors["new_password"] = "新密码不能与当前密码相同"  # noqa: S105 - a message
    if fields.get("confirm_password", "") != new and "new_password" not in errors:
        errors["confirm_password"] = "两次输入的新密码不一致"  # noqa: S105 - a message
    if not errors:
        outcome = await change_password(
            session,
            container.settings,
            user,
            current=current,
            new=new,
            keep_session=seen.auth.session_id,
            now=utcnow(),
        )
        await session.commit()
        if outcome == "changed":
            return RedirectResponse("/w", status.HTTP_303_SEE_OTHER)
        errors["current_password"] = (
            "失败次数过多，账号已暂时锁定" if outcome == "locked" else "当前密码不正确"
        )
    return render(
        container,
        request,
        "password.html",
        seen,
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        errors=errors,
    )
