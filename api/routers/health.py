"""Liveness and readiness for load balancers and the launcher, and the front door."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status
from fastapi.responses import RedirectResponse
from sqlalchemy import text

from api.deps import ContainerDep

router = APIRouter(tags=["health"])


@router.get("/", include_in_schema=False)
async def front_door() -> RedirectResponse:
    # Someone who opens the platform's address in a browser lands on the API's documentation.
    return RedirectResponse("/docs")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(container: ContainerDep, response: Response) -> dict[str, Any]:
    checks: dict[str, str] = {}
    try:
        async with container.sessions() as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        await container.temporal.service_client.check_health()
        checks["temporal"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["temporal"] = f"error: {exc.__class__.__name__}"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"status": "ready" if ready else "not ready", "checks": checks}
