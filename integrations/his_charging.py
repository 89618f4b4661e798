"""Client for the HIS charging interface (收费): an order as the HIS holds it, pre-settlement
with the insurance/self-pay split, settlement confirmation, release, refund check and refund.

Writes carry an Idempotency-Key derived from the saga's workflow and step, so a retry after a
lost answer returns the first answer instead of charging or refunding twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict

from integrations.his import HisRefused, HisUnavailable, his_http
from integrations.refusals import Refused, detail_of

PREFIX = "/his/api/v1/charging"


class HisChargeRefused(HisRefused, Refused):
    pass


class HisChargeOrder(BaseModel):
    model_config = ConfigDict(extra="ignore")

    order_no: str
    patient_id: str
    kind: str
    title: str
    department_code: str
    department_name: str
    total_fen: int
    status: str


class HisPresettlement(BaseModel):
    model_config = ConfigDict(extra="ignore")

    presettle_id: str
    total_fen: int
    insurance_fen: int
    self_pay_fen: int
    expires_at: datetime


class HisRefundCheck(BaseModel):
    model_config = ConfigDict(extra="ignore")

    refundable: bool
    reason: str = ""
    insurance_fen: int = 0
    self_pay_fen: int = 0


def _order_path(order_no: str) -> str:
    # The order number is one path segment whatever it holds ("/", "?", spaces...).
    return f"/orders/{quote(order_no, safe='')}"


class HisChargingClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @classmethod
    def create(cls, base_url: str, api_key: str, timeout_seconds: float) -> HisChargingClient:
        return cls(his_http(base_url, api_key, timeout_seconds))

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None
    ) -> Any:
        headers = {"Idempotency-Key": key} if key else {}
        try:
            response = await self._http.request(method, PREFIX + path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise HisUnavailable(f"HIS charging: {exc.__class__.__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise HisUnavailable(f"HIS charging answered {response.status_code}")
        if response.status_code >= 400:
            raise HisChargeRefused(*detail_of(response))
        return response.json()

    async def enter_charge(
        self,
        *,
        patient_id: str,
        title: str,
        department_code: str,
        department_name: str,
        amount_fen: int,
        key: str,
    ) -> HisChargeOrder:
        """Bills a service the platform sells (a home-nursing visit) as an HIS order, once per
        ``key``: it is then paid and refunded like any other order."""
        body = await self._call(
            "POST",
            "/orders",
            {
                "patient_id": patient_id,
                "kind": "nursing",
                "title": title,
                "department_code": department_code,
                "department_name": department_name,
                "amount_fen": amount_fen,
            },
            key=key,
        )
        return HisChargeOrder.model_validate(body)

    async def get_order(self, order_no: str) -> HisChargeOrder | None:
        try:
            body = await self._call("GET", _order_path(order_no))
        except HisChargeRefused as exc:
            if exc.code == "ORDER_NOT_FOUND":
                return None
            raise
        return HisChargeOrder.model_validate(body)

    async def presettle(
        self, order_no: str, patient_id: str, use_insurance: bool, key: str
    ) -> HisPresettlement:
        body = await self._call(
            "POST",
            f"{_order_path(order_no)}/pre-settlements",
            {"patient_id": patient_id, "use_insurance": use_insurance},
            key,
        )
        return HisPresettlement.model_validate(body)

    async def settle(self, order_no: str, body: dict[str, Any], key: str) -> str:
        answer = await self._call("POST", f"{_order_path(order_no)}/settlements", body, key)
        return str(answer["receipt_no"])

    async def release(self, order_no: str, presettle_id: str, reason: str) -> None:
        await self._call(
            "POST",
            f"{_order_path(order_no)}/release",
            {"presettle_id": presettle_id, "reason": reason},
        )

    async def refund_check(self, order_no: str, amount_fen: int) -> HisRefundCheck:
        body = await self._call(
            "POST", f"{_order_path(order_no)}/refund-checks", {"amount_fen": amount_fen}
        )
        return HisRefundCheck.model_validate(body)

    async def refund(self, order_no: str, body: dict[str, Any], key: str) -> str:
        answer = await self._call("POST", f"{_order_path(order_no)}/refunds", body, key)
        return str(answer["his_refund_no"])
