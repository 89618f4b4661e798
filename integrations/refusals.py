"""A party's answer that it will not do what was asked, as opposed to not answering: the
payment-side clients raise a subclass of ``Refused`` for the first and their own
``...Unavailable`` for the second, so that callers retry only what is worth retrying."""

from __future__ import annotations

import httpx


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def detail_of(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of a 4xx answer shaped ``{"detail": {"code", "message"}}``; the status
    and the start of the body when it is not."""
    try:
        detail = response.json().get("detail", {})
        return str(detail.get("code")), str(detail.get("message"))
    except (ValueError, AttributeError):
        return str(response.status_code), response.text[:200]
