"""POST /webhooks/his/discharge: authentication, validation, deduplication, no half-writes."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

from sqlmodel import SQLModel, select
from temporalio.client import WorkflowExecutionStatus

from core.models import AuditEntry, Encounter, InboundEvent, Patient
from simulators.his.app import Faults
from tests.api.conftest import LIBRARY_TABLES, Api, discharge_event

# Every table, empty: a refused event writes nothing anywhere.
EMPTY = dict.fromkeys(set(SQLModel.metadata.tables) - set(LIBRARY_TABLES), 0)


async def test_discharge_starts_the_matching_pathways(api: Api) -> None:
    event = discharge_event()
    response = await api.post_event(event)

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["duplicate"] is False
    runs = {r["plan_id"]: r for r in body["runs"]}
    # Any inpatient's follow-up, and the cardiology ward's education schedule.
    assert set(runs) == {"inpatient-discharge", "cardiac-education"}
    run = runs["inpatient-discharge"]
    encounter_id = event["encounter"]["encounter_id"]
    assert run["workflow_id"] == f"pathway:inpatient-discharge:P0001:{encounter_id}"
    assert run["plan_version"] == 1
    description = await api.temporal.get_workflow_handle(run["workflow_id"]).describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    assert description.run_id == run["run_id"]
    assert description.task_queue == api.settings.temporal_task_queue
    async with api.sessions() as session:
        patient = (await session.exec(select(Patient))).one()
        encounter = (await session.exec(select(Encounter))).one()
        audit = (await session.exec(select(AuditEntry))).one()
    # Master data came from the HIS query interface, not from the event.
    assert (patient.his_patient_id, patient.name, patient.phone) == (
        "P0001",
        "张建国",
        "13800138001",
    )
    assert (encounter.his_encounter_id, encounter.department_code) == (encounter_id, "cardiology")
    assert (audit.actor_type, audit.action) == ("his", "discharge.accepted")


async def test_duplicate_event_returns_the_existing_run_and_starts_nothing(api: Api) -> None:
    event = discharge_event()
    first = await api.post_event(event)
    second = await api.post_event(event)

    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["duplicate"] is True
    assert second.json()["runs"] == first.json()["runs"]
    workflow_id = first.json()["runs"][0]["workflow_id"]
    executions = [wf async for wf in api.temporal.list_workflows(f"WorkflowId = '{workflow_id}'")]
    assert len(executions) == 1
    counts = await api.counts()
    assert (counts["inbound_event"], counts["patient"], counts["encounter"]) == (1, 1, 1)


async def test_racing_duplicate_deliveries_start_one_run(api: Api) -> None:
    event = discharge_event()
    responses = await asyncio.gather(api.post_event(event), api.post_event(event))

    assert sorted(r.status_code for r in responses) == [200, 202]
    assert responses[0].json()["runs"] == responses[1].json()["runs"]
    assert (await api.counts())["inbound_event"] == 1


async def test_second_event_for_the_same_discharge_reuses_the_run(api: Api) -> None:
    first = await api.post_event(discharge_event(encounter_id="ENC-SAME"))
    second = await api.post_event(discharge_event(encounter_id="ENC-SAME"))

    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json()["runs"] == first.json()["runs"]


async def test_event_id_reused_with_another_body_is_a_conflict(api: Api) -> None:
    await api.post_event(discharge_event(event_id="EVT-X"))
    before = await api.counts()
    response = await api.post_event(discharge_event(event_id="EVT-X"))

    assert response.status_code == 409
    assert "EVT-X" in response.json()["detail"]
    assert await api.counts() == before


async def test_bad_signature_is_refused_and_writes_nothing(api: Api) -> None:
    response = await api.post_event(discharge_event(), secret="not-the-shared-secret")

    assert response.status_code == 401
    assert "signature" in response.json()["detail"]
    assert await api.counts() == EMPTY


async def test_stale_timestamp_is_refused(api: Api) -> None:
    response = await api.post_event(discharge_event(), timestamp=int(time.time()) - 301)

    assert response.status_code == 401
    assert "window" in response.json()["detail"]
    assert await api.counts() == EMPTY


async def test_missing_signature_headers_are_refused(api: Api) -> None:
    response = await api.http.post("/webhooks/his/discharge", json=discharge_event())

    assert response.status_code == 401
    assert await api.counts() == EMPTY


async def test_malformed_json_is_422(api: Api) -> None:
    response = await api.post_event(b'{"event_id": "EVT-1", ')

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert await api.counts() == EMPTY


async def test_missing_field_is_422_naming_it(api: Api) -> None:
    event = discharge_event()
    del event["encounter"]["discharged_at"]
    event["patient_id"] = "P 0001; DROP"
    response = await api.post_event(json.dumps(event).encode())

    assert response.status_code == 422
    locations = {tuple(error["loc"]) for error in response.json()["detail"]}
    assert locations == {("body", "encounter", "discharged_at"), ("body", "patient_id")}
    assert await api.counts() == EMPTY


async def test_discharge_in_the_future_is_422(api: Api) -> None:
    event = discharge_event(discharged_at=datetime.now(UTC) + timedelta(days=1))
    response = await api.post_event(event)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "encounter", "discharged_at"]
    assert await api.counts() == EMPTY


async def test_unknown_patient_is_404_and_writes_nothing(api: Api) -> None:
    response = await api.post_event(discharge_event(patient_id="P9999"))

    assert response.status_code == 404
    assert "P9999" in response.json()["detail"]
    assert await api.counts() == EMPTY


async def test_his_outage_for_an_unknown_patient_is_503(api: Api) -> None:
    api.his.state.faults = Faults(patient_query_status=503, patient_query_count=5)
    response = await api.post_event(discharge_event())

    assert response.status_code == 503
    assert await api.counts() == EMPTY


async def test_his_outage_for_a_known_patient_uses_the_stored_record(api: Api) -> None:
    assert (await api.post_event(discharge_event())).status_code == 202
    api.his.state.faults = Faults(patient_query_status=503, patient_query_count=5)
    event = discharge_event()
    response = await api.post_event(event)

    assert response.status_code == 202
    assert response.json()["runs"][0]["workflow_id"].endswith(
        f":P0001:{event['encounter']['encounter_id']}"
    )


async def test_outpatient_discharge_matches_no_plan(api: Api) -> None:
    event = discharge_event()
    event["encounter"]["kind"] = "outpatient"
    response = await api.post_event(event)

    assert response.status_code == 202
    assert response.json()["runs"] == []
    async with api.sessions() as session:
        recorded = (await session.exec(select(InboundEvent))).one()
    assert recorded.runs == []


async def test_compressed_clock_is_refused_where_not_allowed(api: Api) -> None:
    api.settings.allow_demo_clock = False
    response = await api.post_event(discharge_event(demo_clock_speedup=1440))

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "demo_clock_speedup"]
    assert await api.counts() == EMPTY


async def test_each_event_stores_what_the_his_changed_and_rewrites_nothing_else(api: Api) -> None:
    async def stored() -> Patient:
        async with api.sessions() as session:
            return (await session.exec(select(Patient))).one()

    assert (await api.post_event(discharge_event())).status_code == 202
    first = await stored()
    assert (await api.post_event(discharge_event())).status_code == 202
    unchanged = await stored()
    patients = api.his.state.patients
    patients["P0001"] = patients["P0001"].model_copy(update={"phone": "13800138999"})
    assert (await api.post_event(discharge_event())).status_code == 202
    changed = await stored()

    # Unchanged master data is not written again (no row lock while the runs start).
    assert (unchanged.phone, unchanged.updated_at) == ("13800138001", first.updated_at)
    assert changed.phone == "13800138999"
    assert changed.updated_at > first.updated_at
