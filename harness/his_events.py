"""Driving the HIS simulator as a hospital would, for tests that run the platform's processes."""

from __future__ import annotations

from typing import Any

import httpx


async def discharge_through_his(
    http: httpx.AsyncClient, his_url: str, patient_id: str, speedup: float, **ward: Any
) -> str:
    """Admits and discharges the patient in the HIS simulator, which sends the signed event to
    the platform; returns the discharge follow-up run the platform started."""
    encounter = await http.post(
        f"{his_url}/sim/encounters", json={"patient_id": patient_id, **ward}
    )
    discharge = await http.post(
        f"{his_url}/sim/encounters/{encounter.json()['encounter_id']}/discharge",
        json={"demo_clock_speedup": speedup},
    )
    delivery = discharge.json()["deliveries"][0]
    assert delivery["status_code"] == 202, delivery
    workflow_id: str = next(
        r["workflow_id"]
        for r in delivery["response"]["runs"]
        if r["plan_id"] == "inpatient-discharge"
    )
    return workflow_id
