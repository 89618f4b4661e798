"""A medical insurance centre simulator (医保中心).

Access tokens from app credentials that expire (``token_ttl_seconds``; /sim/tokens/expire ends
every token at once), settlement of the insurance part of an order, cancellation of a settlement
(撤销结算), refunds of part of one, and a ledger for the books. An expired token answers
401 with code TOKEN_EXPIRED, which the platform must answer by applying again (PAY-4).
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, status
from pydantic import BaseModel, Field

from simulators.faults import FaultInjector, add_fault_control, install


class TokenRequest(BaseModel):
    app_id: str
    app_secret: str


class SettleRequest(BaseModel):
    order_no: str
    patient_id: str
    presettle_id: str
    amount_fen: int = Field(gt=0)


class CancelRequest(BaseModel):
    reason: str = ""


class RefundRequest(BaseModel):
    refund_no: str
    amount_fen: int = Field(gt=0)


@dataclass
class SimSettlement:
    settlement_id: str
    order_no: str
    patient_id: str
    presettle_id: str
    amount_fen: int
    status: Literal["settled", "cancelled"] = "settled"
    refunds: dict[str, int] = field(default_factory=dict)  # refund_no -> fen
    settled_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    cancelled_at: datetime | None = None

    @property
    def refunded_fen(self) -> int:
        return sum(self.refunds.values())


@dataclass
class InsuranceState:
    # app_id -> secret of the systems allowed to call (the platform, the HIS).
    apps: dict[str, str]
    token_ttl_seconds: int = 7200
    tokens: dict[str, datetime] = field(default_factory=dict)
    settlements: dict[str, SimSettlement] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)  # idempotency key -> settlement id
    tokens_issued: int = 0
    expired_rejections: int = 0
    faults: FaultInjector = field(default_factory=lambda: FaultInjector(scope_prefix="/api"))
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def ledger(self) -> dict[str, int]:
        settled = sum(s.amount_fen for s in self.settlements.values())
        cancelled = sum(s.amount_fen for s in self.settlements.values() if s.status == "cancelled")
        refunded = sum(s.refunded_fen for s in self.settlements.values())
        return {
            "settled_fen": settled,
            "cancelled_fen": cancelled,
            "refunded_fen": refunded,
            "net_fen": settled - cancelled - refunded,
            "active_settlements": sum(
                1 for s in self.settlements.values() if s.status == "settled"
            ),
        }


def _error(http_status: int, code: str, message: str) -> HTTPException:
    return HTTPException(http_status, {"code": code, "message": message})


def create_app(state: InsuranceState) -> FastAPI:
    app = FastAPI(title="Insurance centre simulator (医保中心)")
    app.state.insurance = state
    install(app, state.faults)

    async def caller(authorization: str | None = Header(default=None)) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        expiry = state.tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is None:
            raise _error(status.HTTP_401_UNAUTHORIZED, "TOKEN_INVALID", "unknown token")
        if expiry <= datetime.now(UTC):
            state.expired_rejections += 1
            raise _error(status.HTTP_401_UNAUTHORIZED, "TOKEN_EXPIRED", "token expired")
        return token

    api = APIRouter(prefix="/api/v1")

    @api.post("/token")
    async def token(request: TokenRequest) -> dict[str, Any]:
        secret = state.apps.get(request.app_id)
        if secret is None or not secrets.compare_digest(secret, request.app_secret):
            raise _error(status.HTTP_401_UNAUTHORIZED, "BAD_CREDENTIALS", "wrong app credentials")
        value = secrets.token_urlsafe(24)
        state.tokens[value] = datetime.now(UTC) + timedelta(seconds=state.token_ttl_seconds)
        state.tokens_issued += 1
        return {"access_token": value, "expires_in": state.token_ttl_seconds}

    authed = APIRouter(prefix="/api/v1", dependencies=[Depends(caller)])

    def _view(s: SimSettlement) -> dict[str, Any]:
        return {
            "settlement_id": s.settlement_id,
            "order_no": s.order_no,
            "status": s.status,
            "presettle_id": s.presettle_id,
            "amount_fen": s.amount_fen,
            "refunded_fen": s.refunded_fen,
            "settled_at": s.settled_at.isoformat(),
        }

    @authed.post("/settlements")
    async def settle(request: SettleRequest, idempotency_key: str = Header()) -> dict[str, Any]:
        known = state.by_key.get(idempotency_key)
        if known is not None:
            return {**_view(state.settlements[known]), "duplicate": True}
        settlement = SimSettlement(
            settlement_id=f"YB{datetime.now(UTC):%Y%m%d}{next(state._counter):06d}"
            f"{uuid.uuid4().hex[:4]}",
            order_no=request.order_no,
            patient_id=request.patient_id,
            presettle_id=request.presettle_id,
            amount_fen=request.amount_fen,
        )
        state.settlements[settlement.settlement_id] = settlement
        state.by_key[idempotency_key] = settlement.settlement_id
        return {**_view(settlement), "duplicate": False}

    @authed.get("/settlements")
    async def find(order_no: str = Query()) -> list[dict[str, Any]]:
        return [_view(s) for s in state.settlements.values() if s.order_no == order_no]

    @authed.post("/settlements/{settlement_id}/cancel")
    async def cancel(settlement_id: str, request: CancelRequest) -> dict[str, Any]:  # noqa: ARG001
        settlement = state.settlements.get(settlement_id)
        if settlement is None:
            raise _error(status.HTTP_404_NOT_FOUND, "SETTLEMENT_NOT_FOUND", "no such settlement")
        if settlement.refunds:
            raise _error(status.HTTP_409_CONFLICT, "HAS_REFUNDS", "refunded settlements stay")
        if settlement.status != "cancelled":
            settlement.status = "cancelled"
            settlement.cancelled_at = datetime.now(UTC)
        return _view(settlement)

    @authed.post("/settlements/{settlement_id}/refunds")
    async def refund(settlement_id: str, request: RefundRequest) -> dict[str, Any]:
        settlement = state.settlements.get(settlement_id)
        if settlement is None:
            raise _error(status.HTTP_404_NOT_FOUND, "SETTLEMENT_NOT_FOUND", "no such settlement")
        if request.refund_no not in settlement.refunds:
            if settlement.status != "settled":
                raise _error(status.HTTP_409_CONFLICT, "SETTLEMENT_CANCELLED", "cancelled")
            if settlement.refunded_fen + request.amount_fen > settlement.amount_fen:
                raise _error(422, "REFUND_EXCEEDS", "more than was settled")
            settlement.refunds[request.refund_no] = request.amount_fen
        return {"refund_id": f"{settlement_id}-R-{request.refund_no}", **_view(settlement)}

    control = APIRouter(prefix="/sim", tags=["simulation control"])

    @control.post("/tokens/expire")
    async def expire_tokens() -> dict[str, int]:
        past = datetime.now(UTC) - timedelta(seconds=1)
        for value in state.tokens:
            state.tokens[value] = past
        return {"expired": len(state.tokens)}

    @control.get("/settlements")
    async def all_settlements() -> list[dict[str, Any]]:
        return [_view(s) for s in state.settlements.values()]

    @control.get("/ledger")
    async def ledger() -> dict[str, int]:
        return state.ledger()

    add_fault_control(control, state.faults)

    app.include_router(api)
    app.include_router(authed)
    app.include_router(control)
    return app
