"""FastAPI dependencies: the container, a database session, and the authenticated staff member.
What a staff member may do and see is in ``api.permissions``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from sqlalchemy.exc import DBAPIError
from sqlmodel.ext.asyncio.session import AsyncSession

from api.container import Container
from core.db import database_unreachable, transaction
from core.logs import get_logger
from core.models import utcnow
from services.identity import touch_session
from services.staff import Authentication, NotAuthenticated, StaffPrincipal, authenticate

log = get_logger(__name__)


async def get_container(request: Request) -> Container:
    # async although it awaits nothing: FastAPI runs a plain function dependency in a worker
    # thread, a thread hop on every request for an attribute read.
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_session(container: ContainerDep) -> AsyncIterator[AsyncSession]:
    # Handlers that change data commit explicitly at the end; anything else is rolled back.
    session = container.sessions()
    try:
        yield session
    finally:
        try:
            await session.close()
        except (DBAPIError, ConnectionError) as exc:
            # The database went away after the handler finished: there is nothing left to roll
            # back, and the answer the caller got stands.
            if not database_unreachable(exc):
                raise
            log.info("session closed on a lost database connection", error=type(exc).__name__)


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def authenticated(
    container: ContainerDep,
    session: SessionDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Authentication:
    """Who the bearer token belongs to: a sign-in session or a static API token (SEC-5)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token in the Authorization header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return await authenticate_token(container, session, token.strip())
    except NotAuthenticated as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None


async def authenticate_token(
    container: Container, session: AsyncSession, token: str, *, activity: bool = True
) -> Authentication:
    """Who a session or API token belongs to (NotAuthenticated if nobody), from the bearer
    header of an API call or the cookie of a workbench page. Without ``activity`` (a page
    refreshing itself) the session's idle timer is left running: nobody is at the screen.

    Read in the request's own database session: one connection and one transaction per
    request. Refreshing the idle timer (at most once a minute per session) commits in a short
    transaction of its own, so that the handler neither holds that row nor, on SQLite, the
    database's write lock, and the refresh stands whatever the handler does."""
    now = utcnow()
    found = await authenticate(session, token, settings=container.settings, now=now)
    if activity and found.session_id is not None and found.stale:
        async with transaction(container.sessions) as touching:
            await touch_session(touching, found.session_id, now)
    return found


AuthenticationDep = Annotated[Authentication, Depends(authenticated)]


async def current_staff(auth: AuthenticationDep) -> StaffPrincipal:
    if auth.must_change_password:
        # Only /api/auth (me, password, sign-out) is open until the one-time password is changed.
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "请先修改管理员设置的初始密码（POST /api/auth/password）"
        )
    return auth.staff


StaffDep = Annotated[StaffPrincipal, Depends(current_staff)]
