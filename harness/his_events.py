"""Driving the HIS simulator as a hospital would, for tests that run the platform's processes."""

from __future__ import annotations

import asyncio
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


async def discharge_until_accepted(
    http: httpx.AsyncClient,
    his_url: str,
    patient_id: str,
    speedup: float,
    *,
    within: float = 600,
    plan_id: str = "inpatient-discharge",
    **ward: Any,
) -> tuple[str, int]:
    """Like ``discharge_through_his``, but as an integration engine that does not give up: when
    its own retries end without the platform's acceptance (the platform is restarting), the HIS
    redelivers the same event until it is accepted (202, or 200 for a repeat). Returns the run's
    workflow id and how many redeliveries it took."""
    encounter = await http.post(
        f"{his_url}/sim/encounters", json={"patient_id": patient_id, **ward}
    )
    encounter.raise_for_status()
    # The HIS answers once its own tries are over: up to five, each waiting up to 30 s.
    discharge = await http.post(
        f"{his_url}/sim/encounters/{encounter.json()['encounter_id']}/discharge",
        json={"demo_clock_speedup": speedup},
        timeout=300,
    )
    discharge.raise_for_status()
    event_id = discharge.json()["event"]["event_id"]
    delivery = discharge.json()["deliveries"][0]
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    redeliveries = 0
    while delivery["status_code"] not in (200, 202):
        if loop.time() > give_up:
            raise AssertionError(f"event {event_id} never accepted: {delivery}")
        await asyncio.sleep(1.0)
        redeliveries += 1
        again = await http.post(f"{his_url}/sim/events/{event_id}/redeliver", timeout=300)
        again.raise_for_status()
        delivery = again.json()["deliveries"][0]
    workflow_id: str = next(
        r["workflow_id"] for r in delivery["response"]["runs"] if r["plan_id"] == plan_id
    )
    return workflow_id, redeliveries
