"""Excel downloads from workbench pages: the file's answer, and the audit entry every export
leaves (who exported which table, with which filters), stated again inside the workbook."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi.responses import Response

from api.deps import SessionDep
from api.workbench.auth import Viewer
from api.workbench.render import ROLE_NAMES
from core.models import StaffRole, utcnow
from services import audit
from services.spreadsheets import XLSX


def download(data: bytes, name: str) -> Response:
    return Response(
        data,
        media_type=XLSX,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
            "Cache-Control": "no-store",
        },
    )


async def exported(
    session: SessionDep, seen: Viewer, table: str, filters: str, tz: ZoneInfo
) -> str:
    """Audits the export; returns the line the workbook states it with (hospital time)."""
    now = utcnow()
    audit.record(
        session,
        actor_type="staff",
        actor_id=seen.staff.id,
        action="report.exported",
        target_type="report",
        target_id=table,
        filters=filters,
    )
    await session.commit()
    role = ROLE_NAMES.get(StaffRole(seen.staff.role), seen.staff.role)
    return f"导出：{seen.staff.name}（{role}），{now.astimezone(tz).strftime('%Y-%m-%d %H:%M:%S')}"
