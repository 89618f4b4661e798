"""Client for the medical insurance centre (医保中心): settlement of an order's insurance part,
its cancellation (撤销结算) and lookup by order.

Access tokens are fetched with the app credentials, cached until shortly before they expire and
shared by concurrent calls. An answer of TOKEN_EXPIRED (the centre may end a token early) is
not a failure: the token is applied for again and the call repeated once (PAY-4).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from integrations.refusals import Refused, detail_of

# Renew this long before the stated expiry so that a call never starts with a dying token.
TOKEN_MARGIN_SECONDS = 60


class InsuranceUnavailable(Exception):
    pass


class InsuranceRefused(Refused):
    pass


class _TokenExpired(Exception):
    pass


class InsuranceSettlement(BaseModel):
    model_config = ConfigDict(extra="ignore")

    settlement_id: str
    order_no: str
    presettle_id: str
    status: str
    amount_fen: int
    refunded_fen: int = 0


class InsuranceClient:
    def __init__(self, http: httpx.AsyncClient, app_id: str, app_secret: str) -> None:
        self._http = http
        self._app_id = app_id
        self._app_secret = app_secret
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = asyncio.Lock()
        self.tokens_fetched = 0

    @classmethod
    def create(
        cls, base_url: str, app_id: str, app_secret: str, timeout_seconds: float
    ) -> InsuranceClient:
        return cls(
            httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(timeout_seconds)),
            app_id,
            app_secret,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _access_token(self, stale: str | None = None) -> str:
        async with self._lock:
            # Another call may have renewed it while this one waited for the lock.
            if self._token and self._token != stale and time.monotonic() < self._token_expires:
                return self._token
            try:
                response = await self._http.post(
                    "/api/v1/token", json={"app_id": self._app_id, "app_secret": self._app_secret}
                )
            except httpx.HTTPError as exc:
                raise InsuranceUnavailable(f"token: {exc.__class__.__name__}") from exc
            body = self._checked(response)
            self._token = str(body["access_token"])
            lifetime = max(float(body.get("expires_in", 0)) - TOKEN_MARGIN_SECONDS, 1.0)
            self._token_expires = time.monotonic() + lifetime
            self.tokens_fetched += 1
            return self._token

    @staticmethod
    def _checked(response: httpx.Response) -> Any:
        if response.status_code >= 500 or response.status_code == 429:
            raise InsuranceUnavailable(f"insurance centre answered {response.status_code}")
        if response.status_code >= 400:
            code, message = detail_of(response)
            if code == "TOKEN_EXPIRED":
                raise _TokenExpired
            raise InsuranceRefused(code, message)
        return response.json()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        key: str | None = None,
    ) -> Any:
        stale: str | None = None
        for _ in range(2):
            token = await self._access_token(stale)
            headers = {"Authorization": f"Bearer {token}"}
            if key is not None:
                headers["Idempotency-Key"] = key
            try:
                response = await self._http.request(
                    method, path, json=json, params=params, headers=headers
                )
            except httpx.HTTPError as exc:
                raise InsuranceUnavailable(exc.__class__.__name__) from exc
            try:
                return self._checked(response)
            except _TokenExpired:
                stale = token
        raise InsuranceUnavailable("token expired again right after renewal")

    async def settle(
        self, *, order_no: str, patient_id: str, presettle_id: str, amount_fen: int, key: str
    ) -> InsuranceSettlement:
        body = await self._call(
            "POST",
            "/api/v1/settlements",
            json={
                "order_no": order_no,
                "patient_id": patient_id,
                "presettle_id": presettle_id,
                "amount_fen": amount_fen,
            },
            key=key,
        )
        return InsuranceSettlement.model_validate(body)

    async def settlements_for(self, order_no: str) -> list[InsuranceSettlement]:
        body = await self._call("GET", "/api/v1/settlements", params={"order_no": order_no})
        return [InsuranceSettlement.model_validate(item) for item in body]

    async def cancel(self, settlement_id: str, reason: str) -> InsuranceSettlement:
        body = await self._call(
            "POST", f"/api/v1/settlements/{settlement_id}/cancel", json={"reason": reason}
        )
        return InsuranceSettlement.model_validate(body)
