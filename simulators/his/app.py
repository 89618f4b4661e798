"""A hospital information system (HIS) simulator.

Speaks the two halves of the HIS protocol the platform integrates with: the query interface we
call (patients, encounters, and charging in ``charging.py``; API-key authenticated) and the
event push it makes to our webhooks (HMAC-signed, retried on failure like an integration engine
would). A /sim control API lets
people and tests admit and discharge patients and inject faults.

The signing here is written independently of the platform's verifier on purpose, so that a bug
in one is not mirrored in the other.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, status
from pydantic import BaseModel, Field

from simulators.faults import FaultInjector, add_fault_control
from simulators.faults import install as install_faults
from simulators.his.charging import ChargingState, InsuranceAccount, charging_routers

SEED_FILE = Path(__file__).with_name("seed.yaml")


class SimPatient(BaseModel):
    patient_id: str
    name: str
    sex: Literal["M", "F", "U"] = "U"
    birth_date: date | None = None
    phone: str | None = None
    id_number: str | None = None
    address: str | None = None


class SimEncounter(BaseModel):
    encounter_id: str
    patient_id: str
    kind: Literal["inpatient", "outpatient", "exam"] = "inpatient"
    department_code: str = "cardiology"
    department_name: str = "心内科"
    ward: str | None = "心内科一病区"
    bed: str | None = None
    attending_doctor: str | None = "D001"
    responsible_nurse: str | None = "N001"
    admitted_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    discharged_at: datetime | None = None
    diagnoses: list[dict[str, str]] = Field(
        default_factory=lambda: [{"code": "I20.000", "name": "不稳定型心绞痛"}]
    )


class AdmitRequest(BaseModel):
    patient_id: str
    encounter_id: str | None = None
    kind: Literal["inpatient", "outpatient", "exam"] = "inpatient"
    department_code: str = "cardiology"
    department_name: str = "心内科"
    ward: str | None = "心内科一病区"
    bed: str | None = None


class DischargeRequest(BaseModel):
    discharged_at: datetime | None = None
    event_id: str | None = None
    demo_clock_speedup: float | None = None


class Faults(BaseModel):
    """Faults injected into the query interface and into event deliveries."""

    # The next N patient queries answer with this status (e.g. 503), then behaviour is normal.
    patient_query_status: int | None = None
    patient_query_count: int = 0
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    # Each event is delivered this many extra times (duplicate delivery, as real engines do).
    duplicate_deliveries: int = Field(default=0, ge=0, le=10)
    # The next N prescription callbacks we receive answer with this status (e.g. 503).
    callback_status: int | None = None
    callback_count: int = 0


@dataclass
class Delivery:
    event_id: str
    url: str
    attempts: int
    status_code: int | None
    response: Any
    delivered_at: str


@dataclass
class HisState:
    patients: dict[str, SimPatient] = field(default_factory=dict)
    encounters: dict[str, SimEncounter] = field(default_factory=dict)
    sent_events: dict[str, bytes] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    # Prescription status callbacks received, keyed by the caller's idempotency key (HIS-3).
    prescription_callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    callback_attempts: int = 0
    # Random faults on the query interface and the callbacks we receive (patients, encounters,
    # prescription callbacks); charging has its own injector. None until a plan is put.
    query_faults: FaultInjector = field(
        default_factory=lambda: FaultInjector(
            scope_prefix="/his/api/v1", exclude_prefixes=("/his/api/v1/charging",)
        )
    )
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_encounter_id(self) -> str:
        return f"ENC{datetime.now(UTC):%Y%m%d}{next(self._counter):04d}{uuid.uuid4().hex[:4]}"

    @classmethod
    def seeded(cls, seed_file: Path = SEED_FILE) -> HisState:
        state = cls()
        data = yaml.safe_load(seed_file.read_text(encoding="utf-8"))
        for raw in data["patients"]:
            patient = SimPatient.model_validate(raw)
            state.patients[patient.patient_id] = patient
        return state


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


class WebhookSender:
    """Delivers events like a hospital integration engine: retries 5xx and network errors."""

    def __init__(self, http: httpx.AsyncClient, target_url: str, secret: str, attempts: int = 5):
        self._http = http
        self._target = target_url.rstrip("/")
        self._secret = secret
        self._attempts = attempts

    async def deliver(self, path: str, body: bytes) -> tuple[int | None, Any, int]:
        url = f"{self._target}{path}"
        status_code: int | None = None
        payload: Any = None
        for attempt in range(1, self._attempts + 1):
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-CarePath-Timestamp": str(timestamp),
                "X-CarePath-Signature": sign(self._secret, timestamp, body),
            }
            try:
                response = await self._http.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                status_code, payload = None, f"{exc.__class__.__name__}: {exc}"
            else:
                status_code = response.status_code
                try:
                    payload = response.json()
                except ValueError:
                    payload = response.text
                if status_code < 500:
                    return status_code, payload, attempt
            await asyncio.sleep(min(0.2 * 2 ** (attempt - 1), 3.0))
        return status_code, payload, self._attempts


def create_app(
    *,
    webhook_target: str,
    webhook_secret: str,
    api_key: str,
    state: HisState | None = None,
    charging: ChargingState | None = None,
    insurance: InsuranceAccount | None = None,
) -> FastAPI:
    his = state or HisState.seeded()
    http = httpx.AsyncClient(timeout=httpx.Timeout(30.0))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await http.aclose()

    app = FastAPI(title="HIS simulator", version="1", lifespan=lifespan)
    sender = WebhookSender(http, webhook_target, webhook_secret)
    app.state.his = his

    async def require_api_key(x_api_key: str | None = Header(default=None)) -> None:
        if x_api_key is None or not hmac.compare_digest(x_api_key, api_key):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, {"code": "UNAUTHORIZED"})

    query = APIRouter(prefix="/his/api/v1", dependencies=[Depends(require_api_key)])

    @query.get("/patients/{patient_id}")
    async def get_patient(patient_id: str) -> SimPatient:
        faults = his.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.patient_query_status and faults.patient_query_count > 0:
            faults.patient_query_count -= 1
            raise HTTPException(faults.patient_query_status, {"code": "INJECTED_FAULT"})
        patient = his.patients.get(patient_id)
        if patient is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, {"code": "PATIENT_NOT_FOUND"})
        return patient

    @query.get("/encounters/{encounter_id}")
    async def get_encounter(encounter_id: str) -> SimEncounter:
        encounter = his.encounters.get(encounter_id)
        if encounter is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, {"code": "ENCOUNTER_NOT_FOUND"})
        return encounter

    @query.post("/prescriptions/{prescription_no}/status-callbacks", status_code=202)
    async def prescription_callback(
        prescription_no: str,
        body: dict[str, Any],
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        his.callback_attempts += 1
        faults = his.faults
        if faults.callback_status and faults.callback_count > 0:
            faults.callback_count -= 1
            raise HTTPException(faults.callback_status, {"code": "INJECTED_FAULT"})
        if not idempotency_key:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, {"code": "IDEMPOTENCY_KEY_REQUIRED"})
        if body.get("prescription_no") != prescription_no:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, {"code": "PRESCRIPTION_MISMATCH"})
        duplicate = idempotency_key in his.prescription_callbacks
        his.prescription_callbacks.setdefault(
            idempotency_key, {**body, "received_at": datetime.now(UTC).isoformat()}
        )
        return {"accepted": True, "duplicate": duplicate}

    control = APIRouter(prefix="/sim", tags=["simulation control"])

    @control.get("/prescription-callbacks")
    async def prescription_callbacks(prescription_no: str | None = None) -> list[dict[str, Any]]:
        return sorted(
            (
                c
                for c in his.prescription_callbacks.values()
                if prescription_no is None or c.get("prescription_no") == prescription_no
            ),
            key=lambda c: int(c.get("seq", 0)),
        )

    @control.get("/patients")
    async def list_patients() -> list[SimPatient]:
        return list(his.patients.values())

    @control.post("/patients", status_code=status.HTTP_201_CREATED)
    async def add_patient(patient: SimPatient) -> SimPatient:
        his.patients[patient.patient_id] = patient
        return patient

    @control.post("/encounters", status_code=status.HTTP_201_CREATED)
    async def admit(request: AdmitRequest) -> SimEncounter:
        if request.patient_id not in his.patients:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown patient")
        encounter = SimEncounter(
            encounter_id=request.encounter_id or his.next_encounter_id(),
            **request.model_dump(exclude={"encounter_id"}),
        )
        his.encounters[encounter.encounter_id] = encounter
        return encounter

    @control.post("/encounters/{encounter_id}/discharge")
    async def discharge(encounter_id: str, request: DischargeRequest) -> dict[str, Any]:
        encounter = his.encounters.get(encounter_id)
        if encounter is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown encounter")
        encounter.discharged_at = request.discharged_at or datetime.now(UTC)
        event: dict[str, Any] = {
            "event_id": request.event_id or f"EVT-{uuid.uuid4().hex}",
            "event_type": "discharge",
            "occurred_at": datetime.now(UTC).isoformat(),
            "patient_id": encounter.patient_id,
            "encounter": encounter.model_dump(mode="json", exclude={"patient_id"}),
        }
        if request.demo_clock_speedup:
            event["demo_clock_speedup"] = request.demo_clock_speedup
        body = json.dumps(event, ensure_ascii=False).encode("utf-8")
        his.sent_events[event["event_id"]] = body
        return await _deliver(event["event_id"], body, copies=1 + his.faults.duplicate_deliveries)

    @control.post("/events/{event_id}/redeliver")
    async def redeliver(event_id: str) -> dict[str, Any]:
        body = his.sent_events.get(event_id)
        if body is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown event")
        return await _deliver(event_id, body, copies=1)

    @control.put("/faults")
    async def set_faults(faults: Faults) -> Faults:
        his.faults = faults
        return faults

    @control.get("/deliveries")
    async def deliveries() -> list[dict[str, Any]]:
        return [d.__dict__ for d in his.deliveries]

    async def _deliver(event_id: str, body: bytes, copies: int) -> dict[str, Any]:
        results = []
        for _ in range(copies):
            code, payload, attempts = await sender.deliver("/webhooks/his/discharge", body)
            delivery = Delivery(
                event_id=event_id,
                url="/webhooks/his/discharge",
                attempts=attempts,
                status_code=code,
                response=payload,
                delivered_at=datetime.now(UTC).isoformat(),
            )
            his.deliveries.append(delivery)
            results.append(delivery.__dict__)
        return {"event": json.loads(body), "deliveries": results}

    billing = charging or ChargingState.seeded()
    app.state.charging = billing
    charging_api, charging_control = charging_routers(billing, insurance, http)
    query.include_router(charging_api)
    install_faults(app, billing.faults)
    install_faults(app, his.query_faults)
    add_fault_control(control, his.query_faults, "/query-faults")
    app.include_router(query)
    app.include_router(control)
    app.include_router(charging_control)
    return app
