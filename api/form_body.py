"""Reading a posted form with a hard cap on its size. Starlette's ``request.form()`` reads any
body to the end (spooling files to disk) before the handler can look at it; a patient page that
takes photos reads at most what its questions accept and stops there."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from fastapi import Request
from starlette.datastructures import FormData
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser


class BodyTooLarge(Exception):
    """The body is longer than the cap (declared so, or found so while reading)."""


class MalformedBody(Exception):
    """Not a form Starlette can parse (broken multipart, too many parts)."""


async def read_form(request: Request, limit: int, *, max_files: int) -> FormData:
    """The form, text fields and files; BodyTooLarge past ``limit`` bytes. The caller closes
    the form (its files are spooled)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge

    async def capped() -> AsyncGenerator[bytes, None]:
        read = 0
        async for chunk in request.stream():
            read += len(chunk)
            if read > limit:
                raise BodyTooLarge
            yield chunk

    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        if kind == "multipart/form-data":
            multipart = MultiPartParser(request.headers, capped(), max_files=max_files)
            return await multipart.parse()
        if kind == "application/x-www-form-urlencoded":
            return await FormParser(request.headers, capped()).parse()
    except MultiPartException as exc:
        raise MalformedBody(exc.message) from exc
    return FormData()


async def read_fields(request: Request, limit: int) -> dict[str, str] | None:
    """A page's posted form without files, as text; None when it is too large or malformed."""
    try:
        posted = await read_form(request, limit, max_files=0)
    except (BodyTooLarge, MalformedBody):
        return None
    return {k: str(v) for k, v in posted.items()}
