"""A real-name identity service simulator (实名认证).

``POST /api/v1/verify`` (our API key in X-Api-Key) tells whether a name goes with a mainland
resident ID number: ``match``, ``mismatch`` (the number is someone else's) or ``not_found``; a
number that cannot exist (format, birth date, check character) is a 422 ``INVALID_ID_NUMBER``.
Answers are idempotent by request id, as the service's are.

The registry starts with the HIS simulator's demo patients, read from its seed file when the
state is seeded, so that a patient admitted from the HIS is one the identity service knows.
The log of checks (``GET /sim/checks``) keeps the ID number masked and never the name, like the
platform's own logs. Faults (simulators/faults.py, ``PUT /sim/faults``) apply to /api only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, status
from pydantic import BaseModel, Field

from integrations.identity import (
    PersonName,
    Result,
    VerifyAnswer,
    VerifyRequest,
    valid_id_number,
)
from simulators.faults import FaultInjector, add_fault_control, install

# The HIS simulator's seed, by path rather than by importing that simulator: one file of demo
# people for both.
HIS_SEED_FILE = Path(__file__).resolve().parent.parent / "his" / "seed.yaml"


class IdentityConflict(Exception):
    """The ID number is registered with another name."""


class Person(BaseModel):
    """``POST /sim/people``."""

    name: PersonName
    id_number: str = Field(max_length=64)


class Registered(BaseModel):
    id_number_masked: str


class Check(BaseModel):
    """One check as the service logs it: never the name, the number masked."""

    request_id: str
    result: Result
    at: datetime
    id_number_masked: str


@dataclass(frozen=True)
class _Answered:
    # A digest of what was asked, so that a request id reused for another person is told apart
    # from a repeat without keeping the name and number a second time.
    asked: str
    answer: VerifyAnswer


def normalised(id_number: str) -> str:
    return id_number.upper()


def masked(id_number: str) -> str:
    """The first 6 (region) and last 4 characters; those between starred."""
    if len(id_number) <= 10:
        return "*" * len(id_number)
    return f"{id_number[:6]}{'*' * (len(id_number) - 10)}{id_number[-4:]}"


def _digest(request: VerifyRequest) -> str:
    asked = f"{request.name}\x00{normalised(request.id_number)}"
    return hashlib.sha256(asked.encode()).hexdigest()


@dataclass
class IdentityState:
    people: dict[str, str] = field(default_factory=dict)  # normalised id number -> name
    checks: list[Check] = field(default_factory=list)
    answered: dict[str, _Answered] = field(default_factory=dict)  # by request id
    faults: FaultInjector = field(default_factory=lambda: FaultInjector(scope_prefix="/api"))

    @classmethod
    def seeded(cls, seed_file: Path = HIS_SEED_FILE) -> IdentityState:
        state = cls()
        data = yaml.safe_load(seed_file.read_text(encoding="utf-8"))
        for patient in data.get("patients") or []:
            # The HIS may hold a patient without an ID number; the registry cannot.
            if patient.get("id_number"):
                if not valid_id_number(str(patient["id_number"])):
                    raise ValueError(f"seed patient {patient.get('patient_id')}: invalid id_number")
                state.register(str(patient["name"]), str(patient["id_number"]))
        return state

    def register(self, name: str, id_number: str) -> None:
        key = normalised(id_number)
        known = self.people.get(key)
        if known is not None and known != name:
            raise IdentityConflict
        self.people[key] = name

    def replay(self, request: VerifyRequest) -> VerifyAnswer | None:
        """The answer already given to this request id; ``IdentityConflict`` when the id was
        used for another person."""
        kept = self.answered.get(request.request_id)
        if kept is None:
            return None
        if not hmac.compare_digest(kept.asked, _digest(request)):
            raise IdentityConflict
        return kept.answer

    def verify(self, request: VerifyRequest) -> VerifyAnswer:
        """A new check of a valid number: answered, kept for repeats and logged."""
        key = normalised(request.id_number)
        known = self.people.get(key)
        result: Result = (
            "not_found" if known is None else "match" if known == request.name else "mismatch"
        )
        now = datetime.now(UTC)
        answer = VerifyAnswer(request_id=request.request_id, result=result, verified_at=now)
        self.answered[request.request_id] = _Answered(_digest(request), answer)
        self.checks.append(
            Check(
                request_id=request.request_id, result=result, at=now, id_number_masked=masked(key)
            )
        )
        return answer


def _error(http_status: int, code: str, message: str | None = None) -> HTTPException:
    detail = {"code": code} if message is None else {"code": code, "message": message}
    return HTTPException(http_status, detail)


def create_app(*, api_key: str, state: IdentityState | None = None) -> FastAPI:
    service = state or IdentityState.seeded()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        service.faults.release()

    app = FastAPI(title="Real-name identity service simulator (实名认证)", lifespan=lifespan)
    app.state.identity = service
    install(app, service.faults)

    async def require_api_key(x_api_key: str | None = Header(default=None)) -> None:
        if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), api_key.encode()):
            raise _error(status.HTTP_401_UNAUTHORIZED, "UNAUTHORIZED", "API Key 无效")

    api = APIRouter(prefix="/api", dependencies=[Depends(require_api_key)])

    @api.post("/v1/verify")
    async def verify(
        request: VerifyRequest, idempotency_key: str | None = Header(default=None)
    ) -> VerifyAnswer:
        if idempotency_key is not None and idempotency_key != request.request_id:
            raise _error(
                status.HTTP_400_BAD_REQUEST, "KEY_MISMATCH", "Idempotency-Key 与 request_id 不一致"
            )
        try:
            answered = service.replay(request)
        except IdentityConflict as exc:
            raise _error(
                status.HTTP_409_CONFLICT, "REQUEST_ID_REUSED", "request_id 已用于另一次核验"
            ) from exc
        if answered is not None:
            return answered
        if not valid_id_number(request.id_number):
            raise _error(status.HTTP_422_UNPROCESSABLE_CONTENT, "INVALID_ID_NUMBER")
        return service.verify(request)

    control = APIRouter(prefix="/sim", tags=["simulation control"])

    @control.get("/checks")
    async def checks() -> list[Check]:
        return service.checks

    @control.post("/people", status_code=status.HTTP_201_CREATED)
    async def add_person(person: Person) -> Registered:
        if not valid_id_number(person.id_number):
            raise _error(status.HTTP_422_UNPROCESSABLE_CONTENT, "INVALID_ID_NUMBER")
        try:
            service.register(person.name, person.id_number)
        except IdentityConflict as exc:
            raise _error(
                status.HTTP_409_CONFLICT, "ID_NUMBER_TAKEN", "该身份证号已登记为另一姓名"
            ) from exc
        return Registered(id_number_masked=masked(normalised(person.id_number)))

    add_fault_control(control, service.faults)

    app.include_router(api)
    app.include_router(control)
    return app
