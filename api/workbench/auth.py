"""Who is looking at a workbench page, and whether a posted form really came from one.

Staff sign in with the same accounts and sessions as the API (SEC-5); the page keeps the session
token in a cookie that only ``/w`` receives, that scripts cannot read and that other sites'
requests never carry (SameSite=Strict). The API itself never accepts that cookie, so a page on
another site cannot make a signed-in browser call it.

Every form and every script request carries a CSRF token: an HMAC of the session under the link
secret, so it needs no storage, changes with each sign-in and cannot be computed elsewhere.

A page route declares its permission with ``page_requires(Permission.X)``: the same table as the
API (``api.permissions``), so the access matrix covers pages too. Without a session a page sends
the browser to the sign-in page; without the permission, or for a record outside the staff
member's data scope, it answers with a page saying so (403, 404).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Protocol, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, status
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import FormData

from api.container import Container
from api.deps import ContainerDep, SessionDep, authenticate_token
from api.form_body import BodyTooLarge, MalformedBody, read_form
from api.permissions import ROLE_PERMISSIONS, Permission, Require
from services.scope import record_in_scope
from services.staff import Authentication, NotAuthenticated, StaffPrincipal

COOKIE = "carepath_staff"
COOKIE_PATH = "/w"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
# Workbench forms are short: notes, dates, a few choices.
MAX_FORM_BYTES = 16 * 1024
# Sent by a list refreshing itself (workbench.js): not a sign that someone is at the screen.
POLL_HEADER = "X-Carepath-Poll"


class PageError(Exception):
    """Answered as a workbench page (see api.workbench.render): a status and what to say."""

    def __init__(self, status_code: int, heading: str, detail: str = "") -> None:
        super().__init__(heading)
        self.status_code = status_code
        self.heading = heading
        self.detail = detail


class PasswordChangeNeeded(Exception):
    """Signed in with the one-time password an administrator set: change it first."""


class SignInNeeded(Exception):
    """No usable session: the browser goes to the sign-in page and comes back to ``next``."""

    def __init__(self, next_path: str, reason: str = "") -> None:
        super().__init__(reason)
        self.next_path = next_path
        self.reason = reason


def sign_in_location(next_path: str, reason: str = "") -> str:
    location = f"/w/sign-in?next={quote(next_path, safe='/')}"
    return location + (f"&why={quote(reason)}" if reason else "")


@dataclass(frozen=True)
class Viewer:
    """The signed-in staff member on a page, with the token their forms carry."""

    staff: StaffPrincipal
    auth: Authentication
    csrf: str

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.staff.role, frozenset())


def csrf_token(container: Container, session_token: str) -> str:
    key = container.settings.link_secret.get_secret_value().encode()
    digest = hashlib.sha256(session_token.encode()).hexdigest()
    return hmac.new(key, f"workbench-csrf:{digest}".encode(), hashlib.sha256).hexdigest()


async def signed_in(request: Request, container: ContainerDep, session: SessionDep) -> Viewer:
    """Whoever the session cookie belongs to, even before they changed a one-time password."""
    token = request.cookies.get(COOKIE, "")
    # After signing in again the browser comes back here; a form's target cannot be opened by
    # itself, so a post goes back to the start.
    here = (
        request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method == "GET"
        else "/w"
    )
    if not token:
        raise SignInNeeded(here)
    try:
        auth = await authenticate_token(
            container, session, token, activity=request.headers.get(POLL_HEADER) != "1"
        )
    except NotAuthenticated as exc:
        raise SignInNeeded(here, str(exc)) from None
    seen = Viewer(auth.staff, auth, csrf_token(container, token))
    # An error page after this point still shows who is signed in and their navigation.
    request.state.viewer = seen
    return seen


async def viewer(seen: Annotated[Viewer, Depends(signed_in)]) -> Viewer:
    if seen.auth.must_change_password:
        raise PasswordChangeNeeded
    return seen


SignedInDep = Annotated[Viewer, Depends(signed_in)]
ViewerDep = Annotated[Viewer, Depends(viewer)]


class PageRequire(Require):
    """``Require`` for pages: the permission from the same table, the staff member from the
    session cookie, a page (not JSON) when it is missing."""

    async def __call__(self, seen: ViewerDep) -> Viewer:  # type: ignore[override]
        if not seen.can(self.permission):
            raise PageError(
                status.HTTP_403_FORBIDDEN,
                "没有权限",
                "您的角色不能使用此页面，如需使用请联系管理员。",
            )
        return seen


_PAGE_REQUIRES = {permission: PageRequire(permission) for permission in Permission}


def page_requires(permission: Permission) -> PageRequire:
    return _PAGE_REQUIRES[permission]


class PatientRecord(Protocol):
    patient_id: str
    department_code: str


Record = TypeVar("Record", bound=PatientRecord)


async def visible_record(
    session: AsyncSession,
    staff: StaffPrincipal,
    model: type[Record],
    key: str,
    what: str,
    *,
    lock: bool = False,
) -> Record:
    """The record (a task, an alert, a run, a prescription), or a "not found" page when there
    is none or it is outside the staff member's data scope, which look alike (the same rule as
    the API's ``ensure_visible``)."""
    row = await session.get(model, key, with_for_update=lock)
    if row is None or not await record_in_scope(
        session, staff, patient_id=row.patient_id, department_code=row.department_code
    ):
        raise PageError(status.HTTP_404_NOT_FOUND, f"未找到该{what}")
    return row


def check_origin(request: Request) -> None:
    """A form posted from another site is refused even before its token is looked at; a
    browser names the page's origin on every cross-site post."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise PageError(status.HTTP_403_FORBIDDEN, "请求来源不正确", "请从工作台页面提交。")


async def posted_form(request: Request, seen: Viewer) -> Mapping[str, str]:
    """A workbench form's fields, after checking its origin and CSRF token (403 page if it is
    missing or from another session)."""
    form = await posted_with_files(request, seen, MAX_FORM_BYTES, max_files=0)
    return {key: str(value) for key, value in form.items() if key != CSRF_FIELD}


async def posted_with_files(
    request: Request, seen: Viewer, limit: int, *, max_files: int
) -> FormData:
    """A form that may carry files, checked like ``posted_form``; the caller closes it."""
    check_origin(request)
    try:
        form = await read_form(request, limit, max_files=max_files)
    except BodyTooLarge:
        raise PageError(status.HTTP_413_CONTENT_TOO_LARGE, "提交的内容过长") from None
    except MalformedBody:
        raise PageError(status.HTTP_400_BAD_REQUEST, "提交的内容无法识别") from None
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not sent:
        sent = request.headers.get(CSRF_HEADER, "")
    # As bytes: compare_digest refuses a str with non-ASCII characters (a 500, not a 403).
    if not hmac.compare_digest(sent.encode(), seen.csrf.encode()):
        await form.close()
        raise PageError(
            status.HTTP_403_FORBIDDEN, "页面已过期", "请刷新页面后重新提交（安全校验未通过）。"
        )
    # No person types a NUL, and PostgreSQL would refuse to store one.
    if any(isinstance(value, str) and "\x00" in value for value in form.values()):
        await form.close()
        raise PageError(status.HTTP_400_BAD_REQUEST, "提交的内容含有无法识别的字符")
    return form
