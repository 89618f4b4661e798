"""Client for the real-name identity service (实名认证) a patient is checked against before ordering
a home-nursing visit: does this name go with this mainland resident ID number? simulators/identity
speaks the service's side.

A failure is either worth retrying (``IdentityUnavailable``) or not (``IdentityRefused``), so that
an activity retries only the first. No message this module makes carries the name or the ID
number: they are exactly what the check is about, and exception messages end up in logs, workflow
histories and the Temporal UI.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from core.validation import Line

API_KEY_HEADER = "X-Api-Key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
VERIFY_PATH = "/api/v1/verify"

# GB 11643-1999: 17 digits weighted, the sum modulo 11 picks the check character.
CHECK_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARACTERS = "10X98765432"
# ASCII digits only: str.isdigit() would accept other scripts' digits.
_ID_NUMBER = re.compile(r"[0-9]{17}[0-9Xx]")

Result = Literal["match", "mismatch", "not_found"]
RequestId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
# Bounds after Line's own: a Field default on a Line field would lose its max_length to Line's.
PersonName = Annotated[Line, Field(min_length=1, max_length=50)]


def valid_id_number(value: str) -> bool:
    """An 18-character mainland resident ID number whose birth date (characters 7-14) is a real
    date and whose last character is the GB 11643-1999 check character ('x' read as 'X')."""
    if _ID_NUMBER.fullmatch(value) is None:
        return False
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    total = sum(
        int(digit) * weight for digit, weight in zip(value[:17], CHECK_WEIGHTS, strict=True)
    )
    return CHECK_CHARACTERS[total % 11] == value[17].upper()


class VerifyRequest(BaseModel):
    """The ID number is not checked here: the service judges it (422 ``INVALID_ID_NUMBER``)."""

    # A bad value must not be repeated in the error a caller may log.
    model_config = ConfigDict(hide_input_in_errors=True)

    request_id: RequestId
    name: PersonName
    id_number: str


class VerifyAnswer(BaseModel):
    request_id: RequestId
    result: Result
    verified_at: AwareDatetime


class IdentityUnavailable(Exception):
    """Worth retrying: network error, timeout, 5xx, 429."""


class IdentityRefused(Exception):
    """The service refused the check (a 4xx other than 429, such as 422 for an invalid ID number)
    or answered something that is not a verification answer; asking the same again cannot
    help."""


class IdentityClient:
    def __init__(self, http: httpx.AsyncClient, base_url: str, api_key: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key

    @classmethod
    def create(cls, base_url: str, api_key: str, timeout_seconds: float) -> IdentityClient:
        return cls(httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds)), base_url, api_key)

    async def close(self) -> None:
        await self._http.aclose()

    async def verify(self, request: VerifyRequest) -> VerifyAnswer:
        """Whether the name goes with the ID number. The request id is the idempotency key, so a
        check sent again after a lost answer gets the first check's answer."""
        try:
            response = await self._http.post(
                f"{self._base_url}{VERIFY_PATH}",
                json=request.model_dump(mode="json"),
                headers={API_KEY_HEADER: self._api_key, IDEMPOTENCY_HEADER: request.request_id},
            )
        except httpx.HTTPError as exc:
            # httpx errors name the URL and the failure, never the body we sent.
            raise IdentityUnavailable(f"identity check failed: {exc.__class__.__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise IdentityUnavailable(f"identity service answered {response.status_code}")
        if not response.is_success:
            reason = _scrubbed(_why(response), request)
            raise IdentityRefused(f"identity service refused the check: {reason}")
        try:
            answer = VerifyAnswer.model_validate_json(response.content)
        except ValidationError as exc:
            # Not chained: the error's text repeats the answer, which may echo the request.
            raise IdentityRefused(
                f"identity service's answer is not a verification answer: {_fields(exc)}"
            ) from None
        if answer.request_id != request.request_id:
            raise IdentityRefused("identity service answered another request")
        return answer


def _fields(exc: ValidationError) -> str:
    # Where and what, never the input.
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['type']}"
        for error in exc.errors(include_url=False, include_input=False)
    )


def _why(response: httpx.Response) -> str:
    """The status and the service's reason, without its echo of our request (a 422 from a
    validating framework repeats the fields it rejected)."""
    try:
        detail: Any = response.json().get("detail")
    except (ValueError, AttributeError):
        return str(response.status_code)
    if isinstance(detail, str):
        return f"{response.status_code} {detail[:200]}"
    if isinstance(detail, dict):
        reason = f"{detail.get('code', '')} {detail.get('message', '')}".strip()
        return f"{response.status_code} {reason[:200]}"
    if isinstance(detail, list):
        places = (
            ".".join(str(part) for part in error.get("loc", ()))
            for error in detail
            if isinstance(error, dict)
        )
        return f"{response.status_code} invalid: {', '.join(places)}"
    return str(response.status_code)


def _scrubbed(reason: str, request: VerifyRequest) -> str:
    """The reason with the name and ID number cut out, should the service's own words repeat
    them."""
    for secret in (request.name, request.id_number):
        if secret:
            reason = re.sub(re.escape(secret), "***", reason, flags=re.IGNORECASE)
    return reason
