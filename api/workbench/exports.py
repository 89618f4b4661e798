"""Excel downloads from workbench pages: the file's answer, and the audit entry every export
leaves (who exported which table, with which filters), stated again inside the workbook."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi.responses import Response

from api.deps import SessionDep
from api.workbench.auth import Viewer
from api.workbench.render import staff_label
from core.models import utcnow
from services import audit
from services.spreadsheets import XLSX

# Rows a list's export holds at most; the workbook says when there were more.
EXPORT_LIMIT = 5000


def local_time(moment: datetime | None, tz: ZoneInfo) -> str:
    """A cell's time, in the hospital's zone and sortable as text; empty for none."""
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""


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
    label = staff_label(seen.staff.name, seen.staff.role)
    return f"导出：{label}，{now.astimezone(tz).strftime('%Y-%m-%d %H:%M:%S')}"
