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
    """(code, message) of a 4xx answer shaped ``{"detail": {"code", "message"}}``; otherwise
    the status and what the answer does say (a plain ``detail`` text, or the start of the
    body), never "None"."""
    status = str(response.status_code)
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return status, response.text[:200] or response.reason_phrase
    if isinstance(detail, dict):
        code, message = detail.get("code"), detail.get("message")
        return str(code or status), str(message or response.reason_phrase)
    if isinstance(detail, str) and detail:
        return status, detail[:200]
    return status, response.text[:200] or response.reason_phrase
