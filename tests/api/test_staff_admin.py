"""Staff administration (SEC-5, SEC-1): administrators create accounts, assign scope, deactivate
and rotate credentials; each change is audited; bad input is refused naming the field, with
nothing written; everyone else gets 403."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from core.db import transaction
from core.models import AuditEntry, StaffRole, StaffSession, StaffUser, utcnow
from harness.staff import add_person, add_staff
from tests.api.conftest import Api

PASSWORD = "correct-horse-battery"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def audit_rows(api: Api, target_id: str) -> list[AuditEntry]:
    async with api.sessions() as session:
        rows = await session.exec(
            select(AuditEntry).where(AuditEntry.target_id == target_id).order_by(col(AuditEntry.at))
        )
        return list(rows)


async def admin_token(api: Api) -> str:
    return await add_staff(api.sessions, StaffRole.ADMIN, None, "管理员")


async def create(api: Api, admin: str, **body: Any) -> httpx.Response:
    values: dict[str, Any] = {
        "name": "周护士",
        "role": "nurse",
        "username": "zhou",
        "department_code": "cardiology",
    }
    values.update(body)
    return await api.http.post(
        "/api/admin/staff",
        json={k: v for k, v in values.items() if v is not None},
        headers=auth(admin),
    )


async def test_an_administrator_creates_a_nurse_with_a_one_time_password(api: Api) -> None:
    admin = await admin_token(api)
    response = await create(
        api, admin, username="Zhou.Nurse", ward="心内科一病区", data_scope="ward"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    staff = body["staff"]
    assert staff["username"] == "zhou.nurse"
    assert staff["data_scope"] == "ward"
    assert staff["ward"] == "心内科一病区"
    assert staff["has_password"] is True
    assert staff["has_api_token"] is False
    assert staff["must_change_password"] is True
    one_time = body["one_time_password"]
    assert len(one_time) >= 12
    assert body["api_token"] is None

    # Shown once: neither stored in the clear nor repeated when read back.
    listed = await api.http.get("/api/admin/staff", headers=auth(admin))
    assert one_time not in listed.text
    assert [s["username"] for s in listed.json() if s["role"] == "nurse"] == ["zhou.nurse"]
    one = await api.http.get(f"/api/admin/staff/{staff['id']}", headers=auth(admin))
    assert one.json() == staff
    async with api.sessions() as session:
        stored = await session.get(StaffUser, staff["id"])
    assert stored is not None
    assert stored.password_hash is not None
    assert one_time not in stored.password_hash

    (entry,) = await audit_rows(api, staff["id"])
    assert entry.action == "staff.created"
    assert entry.actor_type == "staff"
    assert entry.actor_id is not None
    assert entry.detail["data_scope"] == "ward"
    assert one_time not in str(entry.detail)

    signed = await api.http.post(
        "/api/auth/sign-in", json={"username": "zhou.nurse", "password": one_time}
    )
    assert signed.status_code == 200


async def test_an_initial_password_is_taken_but_never_echoed(api: Api) -> None:
    admin = await admin_token(api)
    response = await create(api, admin, password="an-initial-password")
    assert response.status_code == 201
    assert response.json()["one_time_password"] is None
    assert "an-initial-password" not in response.text
    signed = await api.http.post(
        "/api/auth/sign-in", json={"username": "zhou", "password": "an-initial-password"}
    )
    assert signed.json()["staff"]["must_change_password"] is True


async def test_an_integration_gets_an_api_token_and_no_password(api: Api) -> None:
    admin = await admin_token(api)
    response = await create(api, admin, name="体检系统", role="integration", username=None)
    assert response.status_code == 201, response.text
    token = response.json()["api_token"]
    assert response.json()["one_time_password"] is None
    assert response.json()["staff"]["has_api_token"] is True
    me = await api.http.get("/api/auth/me", headers=auth(token))
    assert me.json()["staff"]["role"] == "integration"


async def test_list_filters(api: Api) -> None:
    admin = await admin_token(api)
    await create(api, admin, username="zhou")
    await create(api, admin, username="ortho.li", name="李护士", department_code="orthopedics")
    await create(api, admin, username="dr.zhao", name="赵医生", role="doctor")

    async def usernames(**params: Any) -> list[str]:
        found = await api.http.get("/api/admin/staff", params=params, headers=auth(admin))
        assert found.status_code == 200
        return [str(s["username"]) for s in found.json()]

    assert await usernames(department_code="orthopedics") == ["ortho.li"]
    assert await usernames(role="doctor") == ["dr.zhao"]
    assert sorted(await usernames(department_code="cardiology", active=True)) == ["dr.zhao", "zhou"]
    assert await usernames(q="ZHAO") == ["dr.zhao"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data_scope": "ward"}, "ward"),
        ({"data_scope": "own"}, "staff_code"),
        ({"department_code": None, "data_scope": "department"}, "department_code"),
        ({"department_code": None, "ward": "一病区", "data_scope": "ward"}, "department_code"),
        ({"username": None}, "username"),
        ({"username": "a b"}, "username"),
        ({"password": "short"}, "password"),
        ({"password": "ZHOU      "}, "password"),
        ({"role": "integration"}, "username"),
        ({"role": "surgeon"}, "role"),
        ({"name": ""}, "name"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    api: Api, body: dict[str, Any], field: str
) -> None:
    admin = await admin_token(api)
    before = await api.counts()
    values: dict[str, Any] = {
        "name": "周护士",
        "role": "nurse",
        "username": "zhou",
        "department_code": "cardiology",
        **body,
    }
    response = await api.http.post(
        "/api/admin/staff",
        json={k: v for k, v in values.items() if v is not None or k == "department_code"},
        headers=auth(admin),
    )
    assert response.status_code == 422, response.text
    assert ["body", field] in [e["loc"] for e in response.json()["detail"]]
    if "password" in body:
        assert body["password"] not in response.text
    assert await api.counts() == before


async def test_a_taken_username_is_a_conflict(api: Api) -> None:
    admin = await admin_token(api)
    assert (await create(api, admin)).status_code == 201
    before = await api.counts()
    again = await create(api, admin, username="ZHOU", name="另一个周护士")
    assert again.status_code == 409
    assert again.json()["detail"][0]["loc"] == ["body", "username"]
    assert await api.counts() == before


async def test_patch_assigns_scope_and_is_audited(api: Api) -> None:
    admin = await admin_token(api)
    staff_id = (await create(api, admin)).json()["staff"]["id"]
    patched = await api.http.patch(
        f"/api/admin/staff/{staff_id}",
        json={"ward": "心内科一病区", "staff_code": "N001", "data_scope": "own", "role": "doctor"},
        headers=auth(admin),
    )
    assert patched.status_code == 200, patched.text
    staff = patched.json()["staff"]
    assert (staff["ward"], staff["staff_code"], staff["data_scope"], staff["role"]) == (
        "心内科一病区",
        "N001",
        "own",
        "doctor",
    )
    updated = (await audit_rows(api, staff_id))[-1]
    assert updated.action == "staff.updated"
    assert updated.detail["changes"]["data_scope"] == {"from": "department", "to": "own"}
    assert updated.detail["changes"]["role"] == {"from": "nurse", "to": "doctor"}

    # Removing what the scope needs is refused, naming the field; nothing changes.
    before = await api.counts()
    refused = await api.http.patch(
        f"/api/admin/staff/{staff_id}", json={"staff_code": None}, headers=auth(admin)
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "staff_code"]
    crossing = await api.http.patch(
        f"/api/admin/staff/{staff_id}", json={"role": "integration"}, headers=auth(admin)
    )
    assert crossing.status_code == 422
    assert crossing.json()["detail"][0]["loc"] == ["body", "role"]
    assert await api.counts() == before
    async with api.sessions() as session:
        stored = await session.get(StaffUser, staff_id)
    assert stored is not None
    assert stored.staff_code == "N001"
    missing = await api.http.patch(
        "/api/admin/staff/no-such-id", json={"ward": "x"}, headers=auth(admin)
    )
    assert missing.status_code == 404


async def test_deactivation_ends_sessions_and_is_audited(api: Api) -> None:
    admin = await admin_token(api)
    created = (await create(api, admin, password="an-initial-password")).json()
    staff_id = created["staff"]["id"]
    token = (
        await api.http.post(
            "/api/auth/sign-in", json={"username": "zhou", "password": "an-initial-password"}
        )
    ).json()["token"]
    done = await api.http.post(f"/api/admin/staff/{staff_id}/deactivate", headers=auth(admin))
    assert done.status_code == 200
    assert done.json()["staff"]["active"] is False
    assert done.json()["sessions_revoked"] == 1
    assert (await api.http.get("/api/auth/me", headers=auth(token))).status_code == 401
    entry = (await audit_rows(api, staff_id))[-1]
    assert entry.action == "staff.deactivated"
    assert entry.detail["sessions_revoked"] == 1


async def test_an_administrator_cannot_deactivate_themselves(api: Api) -> None:
    admin_id = await add_person(
        api.sessions,
        api.settings,
        username="admin.li",
        password=PASSWORD,
        role=StaffRole.ADMIN,
        department_code=None,
    )
    token = (
        await api.http.post(
            "/api/auth/sign-in", json={"username": "admin.li", "password": PASSWORD}
        )
    ).json()["token"]
    refused = await api.http.post(f"/api/admin/staff/{admin_id}/deactivate", headers=auth(token))
    assert refused.status_code == 409
    own_role = await api.http.patch(
        f"/api/admin/staff/{admin_id}", json={"role": "nurse"}, headers=auth(token)
    )
    assert own_role.status_code == 422


async def test_rotating_credentials_ends_sessions_lifts_the_lock_and_resets_totp(
    api: Api,
) -> None:
    admin = await admin_token(api)
    staff_id = await add_person(
        api.sessions,
        api.settings,
        username="admin.wu",
        password=PASSWORD,
        role=StaffRole.ADMIN,
        department_code=None,
    )
    token = (
        await api.http.post(
            "/api/auth/sign-in", json={"username": "admin.wu", "password": PASSWORD}
        )
    ).json()["token"]
    async with transaction(api.sessions) as session:
        user = await session.get(StaffUser, staff_id)
        assert user is not None
        user.locked_until = utcnow() + timedelta(minutes=10)
        user.failed_logins = 3
        user.totp_secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
        user.totp_confirmed_at = utcnow()

    rotated = await api.http.post(
        f"/api/admin/staff/{staff_id}/credentials",
        json={"one_time_password": True, "api_token": True, "reset_totp": True},
        headers=auth(admin),
    )
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["sessions_revoked"] == 1
    assert body["staff"]["locked_until"] is None
    assert body["staff"]["totp_enabled"] is False
    assert body["staff"]["must_change_password"] is True
    assert (await api.http.get("/api/auth/me", headers=auth(token))).status_code == 401
    # The new one-time password works at once (the lock is lifted, no TOTP needed) ...
    signed = await api.http.post(
        "/api/auth/sign-in", json={"username": "admin.wu", "password": body["one_time_password"]}
    )
    assert signed.status_code == 200, signed.text
    # ... and so does the new token, outside production.
    assert (await api.http.get("/api/auth/me", headers=auth(body["api_token"]))).status_code == 200
    assert (
        await api.http.post(
            "/api/auth/sign-in", json={"username": "admin.wu", "password": PASSWORD}
        )
    ).status_code == 401

    entry = next(
        e for e in await audit_rows(api, staff_id) if e.action == "staff.credentials_rotated"
    )
    assert entry.detail == {
        "one_time_password": True,
        "api_token": True,
        "reset_totp": True,
        "unlocked": True,
        "sessions_revoked": 1,
    }
    assert body["one_time_password"] not in str(entry.detail)
    assert body["api_token"] not in str(entry.detail)

    before = await api.counts()
    nothing_to_reset = await api.http.post(
        f"/api/admin/staff/{staff_id}/credentials", json={"reset_totp": True}, headers=auth(admin)
    )
    assert nothing_to_reset.status_code == 422
    assert nothing_to_reset.json()["detail"][0]["loc"] == ["body", "reset_totp"]
    assert await api.counts() == before


async def test_a_rotation_ends_only_that_accounts_sessions(api: Api) -> None:
    admin = await admin_token(api)
    first = await add_person(api.sessions, api.settings, username="a.nurse", password=PASSWORD)
    second = await add_person(api.sessions, api.settings, username="b.nurse", password=PASSWORD)
    for name in ("a.nurse", "b.nurse"):
        await api.http.post("/api/auth/sign-in", json={"username": name, "password": PASSWORD})
    rotated = await api.http.post(
        f"/api/admin/staff/{first}/credentials", json={}, headers=auth(admin)
    )
    assert rotated.json()["sessions_revoked"] == 1
    async with api.sessions() as session:
        still_open = await session.exec(
            select(StaffSession.staff_id).where(col(StaffSession.revoked_at).is_(None))
        )
        assert list(still_open) == [second]


async def test_only_administrators_may_administer(api: Api) -> None:
    admin = await admin_token(api)
    staff_id = (await create(api, admin)).json()["staff"]["id"]
    for role in (StaffRole.NURSE, StaffRole.DOCTOR, StaffRole.CARE_MANAGER, StaffRole.INTEGRATION):
        department = None if role == StaffRole.INTEGRATION else "cardiology"
        headers = auth(await add_staff(api.sessions, role, department))
        before = await api.counts()
        answers = [
            await api.http.get("/api/admin/staff", headers=headers),
            await api.http.get(f"/api/admin/staff/{staff_id}", headers=headers),
            await api.http.post(
                "/api/admin/staff",
                json={"name": "x", "role": "admin", "username": "sneaky"},
                headers=headers,
            ),
            await api.http.patch(
                f"/api/admin/staff/{staff_id}", json={"role": "admin"}, headers=headers
            ),
            await api.http.post(f"/api/admin/staff/{staff_id}/deactivate", headers=headers),
            await api.http.post(
                f"/api/admin/staff/{staff_id}/credentials",
                json={"one_time_password": True},
                headers=headers,
            ),
        ]
        assert [a.status_code for a in answers] == [403] * len(answers), role
        assert await api.counts() == before
    assert (await api.http.get("/api/admin/staff")).status_code == 401
