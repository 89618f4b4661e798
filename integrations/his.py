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


class HisPatient(BaseModel):
    model_config = ConfigDict(extra="ignore")

    patient_id: str
    name: str
    sex: str | None = None
    birth_date: date | None = None
    phone: str | None = None


class HisClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        # The injected client carries base URL, API key header and timeouts.
        self._http = http

    @classmethod
    def create(cls, base_url: str, api_key: str, timeout_seconds: float) -> HisClient:
        return cls(
            httpx.AsyncClient(
                base_url=base_url,
                headers={API_KEY_HEADER: api_key},
                timeout=httpx.Timeout(timeout_seconds),
            )
        )

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
