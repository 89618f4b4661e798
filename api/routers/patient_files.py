"""Uploaded photos and signatures, shown only through signed, expiring links: the reference in
an answer opens nothing by itself. A page that may show a file hands out a link to it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter, status
from fastapi.responses import PlainTextResponse, Response

from api.deps import ContainerDep, SessionDep
from core.crypto import CryptoError
from core.links import FileLinkExpired, LinkError
from core.logs import get_logger
from core.models import utcnow
from core.validation import Key
from services.uploads import find_upload

router = APIRouter(tags=["patient pages"], include_in_schema=False)
log = get_logger(__name__)

# Long enough for a patient to finish the form with the page open; a page shown again (after
# errors) hands out fresh links.
FILE_LINK_LIFETIME = timedelta(hours=2)
_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # Only ever an image in an <img>: nothing in it runs, and no other site frames it.
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Frame-Options": "DENY",
}


def file_url(container: ContainerDep, reference: str) -> str:
    link = container.file_links.issue(reference, utcnow() + FILE_LINK_LIFETIME)
    return f"/files/{link.reference}?expires={link.expires}&sig={link.signature}"


def _refused(status_code: int, text: str) -> PlainTextResponse:
    return PlainTextResponse(
        text, status_code=status_code, headers={**_HEADERS, "Cache-Control": "no-store"}
    )


@router.get("/files/{reference}")
async def show_file(
    reference: Key,
    container: ContainerDep,
    session: SessionDep,
    expires: str = "",
    sig: str = "",
) -> Response:
    now = utcnow()
    try:
        container.file_links.verify(reference, expires, sig, now)
    except FileLinkExpired:
        return _refused(status.HTTP_403_FORBIDDEN, "图片链接已过期，请刷新页面后查看。")
    except LinkError:
        return _refused(status.HTTP_403_FORBIDDEN, "图片链接无效。")
    upload = await find_upload(session, reference)
    if upload is None:
        return _refused(status.HTTP_404_NOT_FOUND, "图片不存在。")
    try:
        data = await asyncio.to_thread(container.files.read, upload.reference)
    except FileNotFoundError:
        log.error("uploaded file missing", reference=upload.reference)
        return _refused(status.HTTP_404_NOT_FOUND, "图片不存在。")
    except CryptoError as exc:
        log.error("uploaded file does not decrypt", reference=upload.reference, error=str(exc))
        return _refused(status.HTTP_404_NOT_FOUND, "图片不存在。")
    # Cached by the patient's own browser for no longer than the link lives.
    max_age = max(0, min(int(expires) - int(now.timestamp()), 3600))
    return Response(
        data,
        media_type=upload.content_type,
        headers={
            **_HEADERS,
            "Cache-Control": f"private, max-age={max_age}",
            "Content-Disposition": "inline",
        },
    )
