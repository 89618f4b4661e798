"""SEC-2: the audit trail is one append-only HMAC-SM3 chain that verifies after real API
mutations and names tampering; administrators search it; reading a patient's record and
revealing a masked field are audited with the staff member who did it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from core.db import SessionFactory, transaction
from core.models import AuditEntry, StaffRole
from harness.settings import TEST_AUDIT_KEY
from harness.staff import add_staff
from harness.waiting import eventually
from harness.workers import running_worker
from services import audit
from tests.api.conftest import Api, discharge_event
from tests.factories import add_patient


async def sql(session: Any, statement: str, params: dict[str, Any] | None = None) -> None:
    """Raw SQL, as someone at a database prompt would type it."""
    connection = await session.connection()
    await connection.execute(sa.text(statement), params or {})


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def entries(sessions: SessionFactory, **where: str) -> list[AuditEntry]:
    async with sessions() as session:
        query = select(AuditEntry).order_by(col(AuditEntry.seq))
        for name, value in where.items():
            query = query.where(getattr(AuditEntry, name) == value)
        return list((await session.exec(query)).all())


async def test_patient_record_is_masked_reveal_is_full_and_both_are_audited(api: Api) -> None:
    patient, encounter = await add_patient(api.sessions, name="张建国", phone="13800138001")
    nurse = await add_staff(api.sessions, StaffRole.NURSE, "cardiology")
    other = await add_staff(api.sessions, StaffRole.NURSE, "orthopedics", name="李护士")
    pharmacist = await add_staff(api.sessions, StaffRole.PHARMACIST, None, name="药师")

    got = await api.http.get(f"/api/patients/{patient.id}", headers=auth(nurse))
    assert got.status_code == 200, got.text
    record = got.json()
    # A nurse sees whom she treats by name; the number is shown only when revealed.
    assert record["patient"]["name"] == "张建国"
    assert record["patient"]["phone"] == "138****8001"
    assert "13800138001" not in got.text
    assert [e["his_encounter_id"] for e in record["encounters"]] == [encounter.his_encounter_id]
    assert record["runs"] == []
    assert record["open_alerts"] == []

    phone = await api.http.post(
        f"/api/patients/{patient.id}/reveal", json={"field": "phone"}, headers=auth(nurse)
    )
    name = await api.http.post(
        f"/api/patients/{patient.id}/reveal", json={"field": "name"}, headers=auth(nurse)
    )
    assert (phone.json()["value"], name.json()["value"]) == ("13800138001", "张建国")
    bad = await api.http.post(
        f"/api/patients/{patient.id}/reveal", json={"field": "bank_card"}, headers=auth(nurse)
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "field"]
    # Another department's patient is unknown to them; a pharmacist may not read records.
    assert (
        await api.http.get(f"/api/patients/{patient.id}", headers=auth(other))
    ).status_code == 404
    assert (
        await api.http.post(
            f"/api/patients/{patient.id}/reveal", json={"field": "name"}, headers=auth(other)
        )
    ).status_code == 404
    assert (
        await api.http.get(f"/api/patients/{patient.id}", headers=auth(pharmacist))
    ).status_code == 403
    # A pharmacist may reveal a phone number for a delivery, not a name.
    assert (
        await api.http.post(
            f"/api/patients/{patient.id}/reveal", json={"field": "name"}, headers=auth(pharmacist)
        )
    ).status_code == 403

    trail = await entries(api.sessions, patient_id=patient.id)
    assert [(e.action, e.detail.get("field")) for e in trail] == [
        ("patient.viewed", None),
        ("patient.revealed", "phone"),
        ("patient.revealed", "name"),
    ]
    nurse_id = trail[0].actor_id
    assert nurse_id
    assert {(e.actor_type, e.actor_id) for e in trail} == {("staff", nurse_id)}
    # The trail holds ids, never the values revealed.
    assert all("张建国" not in str(e.detail) and "138001" not in str(e.detail) for e in trail)


async def test_chain_verifies_after_api_mutations_and_names_edits_and_deletions(
    api: Api, database_url: str
) -> None:
    patient, _ = await add_patient(api.sessions)
    nurse = await add_staff(api.sessions, StaffRole.NURSE, "cardiology")
    for _ in range(3):
        assert (
            await api.http.get(f"/api/patients/{patient.id}", headers=auth(nurse))
        ).status_code == 200
    excluded = await api.http.post(
        f"/api/patients/{patient.id}/exclusion", json={"reason": "转院"}, headers=auth(nurse)
    )
    assert excluded.status_code == 200, excluded.text
    trail = await entries(api.sessions)
    assert [e.seq for e in trail] == list(range(1, len(trail) + 1))
    assert [e.action for e in trail][-4:] == ["patient.viewed"] * 3 + ["patient.excluded"]
    async with api.sessions() as session:
        intact = await audit.verify_chain(session, TEST_AUDIT_KEY)
    assert intact.intact, intact.summary()
    assert intact.entries == len(trail)

    edited, deleted = trail[-4], trail[-2]
    async with api.sessions() as session:
        # The table refuses changes ...
        with pytest.raises(DBAPIError, match="append-only"):
            await sql(session, "DELETE FROM audit_entry WHERE seq = 1")
        await session.rollback()
    async with transaction(api.sessions) as session:
        # ... unless a superuser switches its triggers off.
        await sql(session, "ALTER TABLE audit_entry DISABLE TRIGGER USER")
        await session.execute(
            sa.text("UPDATE audit_entry SET actor_id = 'someone-else' WHERE seq = :seq"),
            {"seq": edited.seq},
        )
        await session.execute(
            sa.text("DELETE FROM audit_entry WHERE seq = :seq"), {"seq": deleted.seq}
        )
        await sql(session, "ALTER TABLE audit_entry ENABLE TRIGGER USER")
    async with api.sessions() as session:
        broken = await audit.verify_chain(session, TEST_AUDIT_KEY)
    assert [(b.seq, b.kind) for b in broken.breaks] == [
        (edited.seq, "edited"),
        (deleted.seq, "deleted"),
    ]

    # The command an operator runs says the same and exits 1.
    url = database_url
    env = {**os.environ, "CAREPATH_AUDIT_KEY": TEST_AUDIT_KEY, "CAREPATH_DATABASE_URL": url}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "infra.audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert f"chain BROKEN at seq {edited.seq} (edited)" in done.stdout
    assert f"seq {deleted.seq}: deleted: gap: seq {deleted.seq} missing" in done.stdout


async def test_reordered_and_inserted_entries_are_named(api: Api) -> None:
    async with transaction(api.sessions) as session:
        for i in range(6):
            audit.record(
                session,
                actor_type="staff",
                actor_id="s1",
                action="test.done",
                target_type="thing",
                target_id=str(i),
            )
    async with transaction(api.sessions) as session:
        await sql(session, "ALTER TABLE audit_entry DISABLE TRIGGER USER")
        # Seq 2 and 3 swap places.
        await sql(session, "UPDATE audit_entry SET seq = -2 WHERE seq = 2")
        await sql(session, "UPDATE audit_entry SET seq = 2 WHERE seq = 3")
        await sql(session, "UPDATE audit_entry SET seq = 3 WHERE seq = -2")
        await sql(session, "ALTER TABLE audit_entry ENABLE TRIGGER USER")
    async with api.sessions() as session:
        reordered = await audit.verify_chain(session, TEST_AUDIT_KEY)
    assert (reordered.breaks[0].seq, reordered.breaks[0].kind) == (2, "reordered")
    assert "now at seq 3" in reordered.breaks[0].why

    async with transaction(api.sessions) as session:
        await sql(session, "ALTER TABLE audit_entry DISABLE TRIGGER USER")
        await sql(session, "UPDATE audit_entry SET seq = -2 WHERE seq = 2")
        await sql(session, "UPDATE audit_entry SET seq = 2 WHERE seq = 3")
        await sql(session, "UPDATE audit_entry SET seq = 3 WHERE seq = -2")
        # A forged entry slipped in after seq 4, the later ones moved up by one.
        await sql(session, "UPDATE audit_entry SET seq = seq + 100 WHERE seq > 4")
        await sql(session, "UPDATE audit_entry SET seq = seq - 99 WHERE seq > 100")
        await session.execute(
            sa.text(
                "INSERT INTO audit_entry (id, seq, at, actor_type, actor_id, action, target_type,"
                " target_id, detail, prev_mac, mac) SELECT 'forged', 5, now(), 'staff', 's2',"
                " 'test.done', 'thing', 'x', '{}', mac, repeat('0', 64) FROM audit_entry"
                " WHERE seq = 4"
            )
        )
        await sql(session, "ALTER TABLE audit_entry ENABLE TRIGGER USER")
    async with api.sessions() as session:
        inserted = await audit.verify_chain(session, TEST_AUDIT_KEY)
    assert (inserted.breaks[0].seq, inserted.breaks[0].kind) == (5, "inserted"), inserted.summary()


async def test_concurrent_appends_keep_one_chain(api: Api) -> None:
    """20 transactions append at once on PostgreSQL; the advisory lock keeps one chain."""
    started = asyncio.Event()

    async def append(i: int) -> None:
        async with transaction(api.sessions) as session:
            await started.wait()
            audit.record(
                session,
                actor_type="system",
                actor_id=None,
                action="test.concurrent",
                target_type="thing",
                target_id=str(i),
            )
            await session.flush()
            await asyncio.sleep(0.01)  # hold the head a moment before committing

    tasks = [asyncio.create_task(append(i)) for i in range(20)]
    await asyncio.sleep(0.05)
    started.set()
    await asyncio.gather(*tasks)
    trail = await entries(api.sessions, action="test.concurrent")
    assert sorted(e.target_id for e in trail) == sorted(str(i) for i in range(20))
    assert [e.seq for e in trail] == list(range(1, 21))
    async with api.sessions() as session:
        result = await audit.verify_chain(session, TEST_AUDIT_KEY)
    assert result.intact, result.summary()
    assert result.entries == 20


async def test_administrators_search_the_trail_by_filters_with_a_cursor(api: Api) -> None:
    admin = await add_staff(api.sessions, StaffRole.ADMIN, None, name="管理员")
    nurse = await add_staff(api.sessions, StaffRole.NURSE, "cardiology")
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    async with transaction(api.sessions) as session:
        for i in range(5):
            audit.record(
                session,
                actor_type="staff",
                actor_id="nurse-1",
                action="patient.viewed",
                target_type="patient",
                target_id="patient-a",
                n=i,
            )
        audit.record(
            session,
            actor_type="staff",
            actor_id="nurse-2",
            action="alert.acknowledged",
            target_type="alert",
            target_id="alert-1",
            patient_id="patient-b",
        )
        old = audit.record(
            session,
            actor_type="system",
            actor_id=None,
            action="run.started",
            target_type="pathway_run",
            target_id="wf-old",
            patient_id="patient-a",
        )
        old.at = long_ago

    async def search(query: str, token: str = admin) -> dict[str, Any]:
        response = await api.http.get(f"/api/audit?{query}", headers=auth(token))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    # Newest first, two at a time, the cursor walking back to the oldest.
    seen: list[int] = []
    cursor = ""
    pages = 0
    while True:
        page = await search(f"patient_id=patient-a&action=patient.viewed&limit=2{cursor}")
        seen += [item["detail"]["n"] for item in page["items"]]
        pages += 1
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert (seen, pages) == ([4, 3, 2, 1, 0], 3)

    by_actor = await search("actor_id=nurse-2")
    assert [i["action"] for i in by_actor["items"]] == ["alert.acknowledged"]
    by_target = await search("target_type=pathway_run&target_id=wf-old")
    assert [i["patient_id"] for i in by_target["items"]] == ["patient-a"]
    recent = await search(
        "patient_id=patient-a&since="
        + (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+", "%2B")
    )
    # The old run start is left out; the searches above are about patient-a too.
    assert {i["action"] for i in recent["items"]} == {"patient.viewed", "audit.searched"}
    early = await search("patient_id=patient-a&until=2026-06-01T00:00:00%2B08:00")
    assert [i["target_id"] for i in early["items"]] == ["wf-old"]

    for query, field in (
        ("since=yesterday", "since"),
        ("until=2026-06-01T00:00:00", "until"),
        ("since=2026-06-02T00:00:00Z&until=2026-06-01T00:00:00Z", "until"),
        ("cursor=not-a-cursor", "cursor"),
        ("limit=0", "limit"),
    ):
        bad = await api.http.get(f"/api/audit?{query}", headers=auth(admin))
        assert bad.status_code == 422, query
        assert bad.json()["detail"][0]["loc"] == ["query", field], query

    refused = await api.http.get("/api/audit", headers=auth(nurse))
    assert refused.status_code == 403
    # Searching is itself on the record, by the administrator.
    searched = await entries(api.sessions, action="audit.searched")
    assert searched
    assert {e.actor_type for e in searched} == {"staff"}
    assert searched[0].patient_id == "patient-a"


async def test_a_run_start_leaves_a_system_entry_that_chains_with_the_his_one(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    admin = await add_staff(api.sessions, StaffRole.ADMIN, None, name="管理员")
    event = discharge_event(discharged_at=datetime.now(UTC) - timedelta(hours=2))
    response = await api.post_event(event)
    assert response.status_code == 202, response.text
    workflow_id = response.json()["runs"][0]["workflow_id"]
    async with running_worker(
        dev_env.client, api.settings.temporal_task_queue, api.settings, api.sessions
    ):

        async def started() -> list[AuditEntry]:
            return await entries(api.sessions, action="run.started", target_id=workflow_id)

        (entry,) = await eventually(started, what="the run's start in the audit trail")
    assert (entry.actor_type, entry.actor_id, entry.target_type) == ("system", None, "pathway_run")
    assert entry.patient_id is not None
    assert entry.detail["plan_id"] == response.json()["runs"][0]["plan_id"]
    page = await api.http.get(
        f"/api/audit?patient_id={entry.patient_id}&actor_id=his", headers=auth(admin)
    )
    assert [i["action"] for i in page.json()["items"]] == ["discharge.accepted"]
    async with api.sessions() as session:
        result = await audit.verify_chain(session, TEST_AUDIT_KEY)
    assert result.intact, result.summary()
