"""Client for the service enterprises that dispense, decoct and deliver herbal prescriptions
(RX-6). Each enterprise exposes the same small order API; its base URL is configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


class EnterpriseUnavailable(Exception):
    """Worth retrying: network error, timeout, 5xx, 429."""


class EnterpriseRefused(Exception):
    """The enterprise rejected the order itself (4xx); retrying cannot help."""


class EnterpriseClient:
    def __init__(self, http: httpx.AsyncClient, base_urls: Mapping[str, str]) -> None:
        self._http = http
        self._base_urls = dict(base_urls)

    @classmethod
    def create(cls, base_urls: Mapping[str, str], timeout_seconds: float) -> EnterpriseClient:
        return cls(httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds)), base_urls)

    async def close(self) -> None:
        await self._http.aclose()

    def _url(self, enterprise: str, path: str) -> str:
        base = self._base_urls.get(enterprise)
        if base is None:
            raise EnterpriseRefused(f"no address configured for enterprise {enterprise}")
        return f"{base.rstrip('/')}{path}"

    async def _post(self, url: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        try:
            response = await self._http.post(url, json=body, headers={"Idempotency-Key": key})
        except httpx.HTTPError as exc:
            raise EnterpriseUnavailable(f"{exc.__class__.__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise EnterpriseUnavailable(f"enterprise answered {response.status_code}")
        if response.status_code >= 400:
            raise EnterpriseRefused(f"{response.status_code} {response.text[:200]}")
        result: dict[str, Any] = response.json() if response.content else {}
        return result

    async def create_order(self, enterprise: str, order: dict[str, Any], key: str) -> str:
        body = await self._post(self._url(enterprise, "/api/orders"), order, key)
        return str(body["order_id"])

    async def cancel_order(
        self, enterprise: str, prescription_id: str, reason: str, key: str
    ) -> None:
        await self._post(
            self._url(enterprise, f"/api/orders/{prescription_id}/cancel"), {"reason": reason}, key
        )
