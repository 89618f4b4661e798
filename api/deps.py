"""FastAPI dependencies: the container, a database session, and the authenticated staff member."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request, status
from sqlmodel.ext.asyncio.session import AsyncSession

from api.container import Container
from core.models import StaffRole
from services.staff import StaffPrincipal, authenticate


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_session(container: ContainerDep) -> AsyncIterator[AsyncSession]:
    # Handlers that change data commit explicitly at the end; anything else is rolled back.
    async with container.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def current_staff(
    session: SessionDep, authorization: Annotated[str | None, Header()] = None
) -> StaffPrincipal:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token in the Authorization header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    staff = await authenticate(session, token.strip())
    if staff is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return staff


StaffDep = Annotated[StaffPrincipal, Depends(current_staff)]


def require_role(
    *roles: StaffRole,
) -> Callable[[StaffPrincipal], Coroutine[Any, Any, StaffPrincipal]]:
    async def check(staff: StaffDep) -> StaffPrincipal:
        if staff.role not in roles:
            allowed = ", ".join(sorted(roles))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this needs one of the roles: {allowed}"
            )
        return staff

    return check


def ensure_visible(staff: StaffPrincipal, department_code: str) -> None:
    """Staff see only their department's patients (SEC-1); unknown and hidden look the same."""
    if not staff.can_see(department_code):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
