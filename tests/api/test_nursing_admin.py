"""Home nursing's catalogue and roster (NUR-1): administrators maintain the items with their
prices and nursing-document templates, and register nurses with their qualifications; every
bad field is named and leaves nothing behind; every change is audited."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from core.models import AuditEntry, NursingItem, StaffRole, StaffUser
from harness.staff import add_staff
from services.staff import token_digest
from tests.api.conftest import Api

PICC: dict[str, Any] = {
    "name": "PICC导管维护",
    "description": "冲管、封管、更换敷料和输液接头",
    "price_fen": 20000,
    "visit_fee_fen": 5000,
    "expected_minutes": 60,
    "qualification": "picc",
    "assessment_form": "home-nursing-assessment",
}


async def test_items_and_prices_are_maintained_by_administrators(api: Api) -> None:
    admin = {"Authorization": f"Bearer {await add_staff(api.sessions, StaffRole.ADMIN, None)}"}
    nurse = {"Authorization": f"Bearer {await add_staff(api.sessions, StaffRole.NURSE)}"}

    for change, field in (
        ({"assessment_form": "no-such-form"}, ["body", "assessment_form"]),
        ({"visit_fee_fen": 30000}, ["body"]),
        ({"price_fen": 0}, ["body", "price_fen"]),
        ({"expected_minutes": 5}, ["body", "expected_minutes"]),
    ):
        refused = await api.http.put(
            "/api/nursing/items/picc", json={**PICC, **change}, headers=admin
        )
        assert refused.status_code == 422, (change, refused.text)
        assert refused.json()["detail"][0]["loc"] == field
    async with api.sessions() as session:
        assert (await session.exec(select(NursingItem))).all() == []

    saved = await api.http.put("/api/nursing/items/picc", json=PICC, headers=admin)
    assert saved.status_code == 200, saved.text
    cheaper = await api.http.put(
        "/api/nursing/items/picc", json={**PICC, "price_fen": 18000}, headers=admin
    )
    assert cheaper.json()["price_fen"] == 18000
    assert (
        await api.http.put("/api/nursing/items/picc", json=PICC, headers=nurse)
    ).status_code == 403
    listed = await api.http.get("/api/nursing/items", headers=nurse)
    assert [(i["code"], i["price_fen"]) for i in listed.json()] == [("picc", 18000)]
    async with api.sessions() as session:
        audited = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "nursing.item_saved"))
        ).all()
    assert [(e.detail["price_fen"], e.detail["previous_price_fen"]) for e in audited] == [
        (20000, None),
        (18000, 20000),
    ]


async def _staff_id(api: Api, token: str) -> str:
    async with api.sessions() as session:
        found = await session.exec(
            select(StaffUser).where(StaffUser.token_sha256 == token_digest(token))
        )
        return found.one().id


async def test_nurses_are_registered_with_their_qualifications(api: Api) -> None:
    admin = {"Authorization": f"Bearer {await add_staff(api.sessions, StaffRole.ADMIN, None)}"}
    doctor_token = await add_staff(api.sessions, StaffRole.DOCTOR, name="赵医生")
    nurse_token = await add_staff(api.sessions, StaffRole.NURSE, name="王护士")
    doctor, nurse = await _staff_id(api, doctor_token), await _staff_id(api, nurse_token)

    not_a_nurse = await api.http.put(f"/api/nursing/nurses/{doctor}", json={}, headers=admin)
    assert not_a_nurse.status_code == 422
    assert not_a_nurse.json()["detail"][0]["loc"] == ["path", "staff_id"]
    no_phone = await api.http.put(
        f"/api/nursing/nurses/{nurse}", json={"head_nurse": True}, headers=admin
    )
    assert no_phone.status_code == 422
    assert no_phone.json()["detail"][0]["loc"] == ["body", "phone"]
    saved = await api.http.put(
        f"/api/nursing/nurses/{nurse}",
        json={
            "qualifications": ["picc", "stoma", "picc"],
            "head_nurse": True,
            "phone": "13900139002",
        },
        headers=admin,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json() == {
        "staff_id": nurse,
        "name": "王护士",
        "qualifications": ["picc", "stoma"],
        "head_nurse": True,
        "on_duty": True,
        "has_phone": True,
    }
    assert "13900139002" not in saved.text
    listed = await api.http.get("/api/nursing/nurses", headers=admin)
    assert [n["staff_id"] for n in listed.json()] == [nurse]
