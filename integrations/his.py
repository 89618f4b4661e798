"""Client for the hospital information system's query interface (HIS-2).

Speaks the HIS REST protocol that simulators/his implements: patient master data by HIS id.
"""

from __future__ import annotations

from datetime import date

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

API_KEY_HEADER = "X-Api-Key"


class HisUnavailable(Exception):
    """The HIS did not answer usefully (network error, timeout, 5xx, unreadable body)."""


class HisRefused(Exception):
    """The HIS answered that it will not accept what we sent (a 4xx other than 409/429)."""


class HisPatient(BaseModel):
    model_config = ConfigDict(extra="ignore")

    patient_id: str
    name: str
    sex: str | None = None
    birth_date: date | None = None
    phone: str | None = None
    # 身份证号 and home address, as the HIS holds them.
    id_number: str | None = None
    address: str | None = None


def his_http(base_url: str, api_key: str, timeout_seconds: float) -> httpx.AsyncClient:
    """An HTTP client for the HIS's interfaces: base URL, our API key, timeouts."""
    return httpx.AsyncClient(
        base_url=base_url, headers={API_KEY_HEADER: api_key}, timeout=httpx.Timeout(timeout_seconds)
    )


class HisClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        # The injected client carries base URL, API key header and timeouts.
        self._http = http

    @classmethod
    def create(cls, base_url: str, api_key: str, timeout_seconds: float) -> HisClient:
        return cls(his_http(base_url, api_key, timeout_seconds))

    async def close(self) -> None:
        await self._http.aclose()

    async def get_patient(self, his_patient_id: str) -> HisPatient | None:
        """The patient's master record, or None if the HIS does not know the id."""
        try:
            response = await self._http.get(f"/his/api/v1/patients/{his_patient_id}")
        except httpx.HTTPError as exc:
            raise HisUnavailable(f"HIS query failed: {exc.__class__.__name__}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise HisUnavailable(f"HIS answered {response.status_code} to a patient query")
        try:
            return HisPatient.model_validate_json(response.content)
        except ValidationError as exc:
            raise HisUnavailable("HIS sent an unreadable patient record") from exc

    async def post_prescription_status(
        self, prescription_no: str, body: dict[str, object], idempotency_key: str
    ) -> None:
        """Calls back the HIS with a prescription's conclusion or status change (HIS-3, RX-5)."""
        await self._callback(
            f"/his/api/v1/prescriptions/{prescription_no}/status-callbacks",
            body,
            idempotency_key,
            "callback",
        )

    async def post_pathway_event(self, body: dict[str, object], idempotency_key: str) -> None:
        """Tells the HIS a pathway reached a step that the hospital wants to hear about."""
        await self._callback("/his/api/v1/pathway-events", body, idempotency_key, "pathway event")

    async def _callback(
        self, path: str, body: dict[str, object], idempotency_key: str, what: str
    ) -> None:
        """Raises HisUnavailable when it is worth retrying (network, 5xx, 429) and HisRefused
        when the HIS rejects the call itself (other 4xx)."""
        try:
            response = await self._http.post(
                path, json=body, headers={"Idempotency-Key": idempotency_key}
            )
        except httpx.HTTPError as exc:
            raise HisUnavailable(f"HIS {what} failed: {exc.__class__.__name__}") from exc
        if response.status_code in (200, 201, 202, 204, 409):
            # 409: the HIS already has this call (our idempotency key) — delivered.
            return
        if response.status_code >= 500 or response.status_code == 429:
            raise HisUnavailable(f"HIS answered {response.status_code} to a {what}")
        raise HisRefused(f"HIS refused the {what}: {response.status_code} {response.text[:200]}")
