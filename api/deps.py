"""FastAPI dependencies: the container, a database session, and the authenticated staff member.
What a staff member may do and see is in ``api.permissions``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from sqlmodel.ext.asyncio.session import AsyncSession

from api.container import Container
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
