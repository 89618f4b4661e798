"""A service-enterprise simulator (代配代煎配送企业, RX-6): receives dispatched prescriptions on its
order API and reports dispensing, decoction and delivery back to the platform's webhook, signed
like the HIS's events (HMAC-SHA256 over timestamp and body with the shared secret).

Orders advance when asked through /sim (tests, people), or by themselves every
``auto_progress_seconds`` (``make run``), and a /sim fault switch makes the order API fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Header, HTTPException, status
from pydantic import BaseModel, Field

DELIVERY_STEPS = ["dispensing", "decocting", "shipped", "delivered"]
PICKUP_STEPS = ["dispensing", "decocting", "ready_for_pickup", "picked_up"]


class Faults(BaseModel):
    # The next N order-API calls answer with this status (e.g. 503).
    fail_status: int | None = None
    fail_count: int = 0


@dataclass
class Order:
    order_id: str
    prescription_id: str
    body: dict[str, Any]
    steps: list[str]
    reported: list[str] = field(default_factory=list)
    cancelled: str | None = None


@dataclass
class EnterpriseState:
    code: str
    orders: dict[str, Order] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)


class AdvanceRequest(BaseModel):
    status: str | None = Field(default=None, description="default: the next step")
    tracking_no: str | None = None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def create_app(
    state: EnterpriseState,
    *,
    platform_url: str,
    secret: str,
    auto_progress_seconds: float | None = None,
) -> FastAPI:
    http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
    tasks: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for task in list(tasks):
            task.cancel()
        await http.aclose()

    app = FastAPI(title=f"Service enterprise simulator ({state.code})", lifespan=lifespan)
    app.state.enterprise = state
    api = APIRouter(prefix="/api")

    def _fault() -> None:
        faults = state.faults
        if faults.fail_status and faults.fail_count > 0:
            faults.fail_count -= 1
            raise HTTPException(faults.fail_status, "injected fault")

    @api.post("/orders", status_code=status.HTTP_201_CREATED)
    async def create_order(body: dict[str, Any], idempotency_key: str = Header()) -> dict[str, Any]:
        _fault()
        if idempotency_key in state.keys:
            return {"order_id": state.keys[idempotency_key], "duplicate": True}
        prescription_id = str(body.get("prescription_id", ""))
        if not prescription_id or not body.get("content", {}).get("items"):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "prescription_id and items required")
        decoction = bool(body["content"].get("decoction"))
        mode = body.get("delivery", {}).get("mode", "delivery")
        steps = [
            s
            for s in (DELIVERY_STEPS if mode == "delivery" else PICKUP_STEPS)
            if decoction or s != "decocting"
        ]
        order = Order(f"{state.code}-{uuid.uuid4().hex[:10]}", prescription_id, body, steps)
        state.orders[prescription_id] = order
        state.keys[idempotency_key] = order.order_id
        if auto_progress_seconds:
            task = asyncio.create_task(_auto(order))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return {"order_id": order.order_id, "duplicate": False}

    @api.post("/orders/{prescription_id}/cancel")
    async def cancel_order(prescription_id: str, body: dict[str, Any]) -> dict[str, Any]:
        _fault()
        order = state.orders.get(prescription_id)
        if order is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such order")
        order.cancelled = order.cancelled or str(body.get("reason", ""))
        return {"order_id": order.order_id, "cancelled": True}

    async def _report(order: Order, step: str, tracking_no: str | None) -> dict[str, Any]:
        event = {
            "event_id": f"{order.order_id}-{step}",
            "prescription_id": order.prescription_id,
            "status": step,
            "at": datetime.now(UTC).isoformat(),
            "tracking_no": tracking_no,
        }
        body = json.dumps(event, ensure_ascii=False).encode()
        timestamp = int(time.time())
        response = await http.post(
            f"{platform_url.rstrip('/')}/webhooks/enterprise/{state.code}/status",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-CarePath-Timestamp": str(timestamp),
                "X-CarePath-Signature": sign(secret, timestamp, body),
            },
        )
        result = {"event": event, "status_code": response.status_code, "response": response.text}
        state.reports.append(result)
        if response.status_code < 300:
            order.reported.append(step)
        return result

    async def _auto(order: Order) -> None:
        assert auto_progress_seconds is not None
        for step in order.steps:
            await asyncio.sleep(auto_progress_seconds)
            if order.cancelled:
                return
            await _report(order, step, f"SF{uuid.uuid4().hex[:10]}" if step == "shipped" else None)

    control = APIRouter(prefix="/sim", tags=["simulation control"])

    @control.get("/orders")
    async def orders() -> list[dict[str, Any]]:
        return [o.__dict__ for o in state.orders.values()]

    @control.post("/orders/{prescription_id}/advance")
    async def advance(prescription_id: str, request: AdvanceRequest) -> dict[str, Any]:
        order = state.orders.get(prescription_id)
        if order is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such order")
        step = request.status or next(
            (s for s in order.steps if s not in order.reported), "delivered"
        )
        return await _report(order, step, request.tracking_no)

    @control.put("/faults")
    async def set_faults(faults: Faults) -> Faults:
        state.faults = faults
        return faults

    app.include_router(api)
    app.include_router(control)
    return app
