"""Client for the physical-exam vendor's interfaces that we call (PX, seed 003): US-K1 binds a
patient to an exam account, US-K2 books an exam. The models are integrations/exam_protocol.py;
simulators/exam speaks the vendor's side.

A failure is either worth retrying (``ExamUnavailable``) or not (``ExamRefused``), so that an
activity retries only the first. Refusal messages never repeat what we sent: a 422 echoes our
request, which carries the patient's name and identity number.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from integrations.exam_protocol import BindAnswer, BindRequest, BookAnswer, BookRequest

API_KEY_HEADER = "X-Api-Key"
BIND_PATH = "/api/us-k1/bind"
BOOK_PATH = "/api/us-k2/book"

_Answer = TypeVar("_Answer", bound=BaseModel)


class ExamUnavailable(Exception):
    """Worth retrying: network error, timeout, 5xx, 429."""


class ExamRefused(Exception):
    """The vendor refused the call (a 4xx other than 429) or answered something that is not the
    interface's answer; sending the same again cannot help."""


class ExamClient:
    def __init__(self, http: httpx.AsyncClient, base_url: str, api_key: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key

    @classmethod
    def create(cls, base_url: str, api_key: str, timeout_seconds: float) -> ExamClient:
        return cls(httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds)), base_url, api_key)

    async def close(self) -> None:
        await self._http.aclose()

    async def bind(self, request: BindRequest) -> BindAnswer:
        """US-K1: the patient's exam account; code "103" when the vendor had to create it."""
        return await self._post(BIND_PATH, request, BindAnswer, what="bind")

    async def book(self, request: BookRequest) -> BookAnswer:
        """US-K2: books the exam; the booking id is the idempotency key, so a booking sent again
        after a lost answer is the same booking at the vendor."""
        return await self._post(
            BOOK_PATH,
            request,
            BookAnswer,
            what="book",
            headers={"Idempotency-Key": request.booking_id},
        )

    async def _post(
        self,
        path: str,
        request: BaseModel,
        answer: type[_Answer],
        *,
        what: str,
        headers: dict[str, str] | None = None,
    ) -> _Answer:
        try:
            response = await self._http.post(
                f"{self._base_url}{path}",
                json=request.model_dump(mode="json"),
                headers={API_KEY_HEADER: self._api_key, **(headers or {})},
            )
        except httpx.HTTPError as exc:
            raise ExamUnavailable(f"exam {what} failed: {exc.__class__.__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise ExamUnavailable(f"exam vendor answered {response.status_code} to {what}")
        if not response.is_success:
            raise ExamRefused(f"exam vendor refused {what}: {_why(response)}")
        try:
            return answer.model_validate_json(response.content)
        except ValidationError as exc:
            raise ExamRefused(
                f"exam vendor's answer to {what} is not the interface's: {_fields(exc)}"
            ) from exc


def _fields(exc: ValidationError) -> str:
    # Where and what, never the input: the answer may carry patient data.
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['type']}"
        for error in exc.errors(include_url=False, include_input=False)
    )


def _why(response: httpx.Response) -> str:
    """The status and the vendor's reason, without any echo of our request."""
    try:
        detail: Any = response.json().get("detail")
    except (ValueError, AttributeError):
        return str(response.status_code)
    if isinstance(detail, str):
        return f"{response.status_code} {detail[:200]}"
    if isinstance(detail, dict):
        reason = f"{detail.get('code', '')} {detail.get('message', '')}"
        return f"{response.status_code} {reason[:200]}"
    if isinstance(detail, list):
        places = (
            ".".join(str(part) for part in error.get("loc", ()))
            for error in detail
            if isinstance(error, dict)
        )
        return f"{response.status_code} invalid: {', '.join(places)}"
    return str(response.status_code)
