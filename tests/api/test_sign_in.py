"""Staff sign-in (SEC-5): password for a session, lockout, session expiry, sign-out, TOTP for
administrators, changing a one-time password, and production refusing people's static tokens.

Time is never slept through: lock ends and session ends are moved in the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pyotp
from argon2 import PasswordHasher
from sqlmodel import col, select

from api.container import Container
from api.main import create_app
from core.db import transaction
from core.models import AuditEntry, StaffRole, StaffSession, StaffUser, utcnow
from harness.settings import TEST_HIS_API_KEY, make_settings
from harness.staff import add_person, add_staff
from integrations.his import HisClient
from services.staff import create_staff
from tests.api.conftest import Api

PASSWORD = "correct-horse-battery"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_in(api: Api, username: str, password: str, **extra: Any) -> httpx.Response:
    return await api.http.post(
        "/api/auth/sign-in", json={"username": username, "password": password, **extra}
    )


async def nurse(api: Api, username: str = "wang.nurse", **kwargs: Any) -> str:
    return await add_person(
        api.sessions, api.settings, username=username, password=PASSWORD, **kwargs
    )


async def actions(api: Api, target_id: str) -> list[str]:
    async with api.sessions() as session:
        rows = await session.exec(
            select(AuditEntry).where(AuditEntry.target_id == target_id).order_by(col(AuditEntry.at))
        )
        return [row.action for row in rows]


async def account(api: Api, staff_id: str) -> StaffUser:
    async with api.sessions() as session:
        user = await session.get(StaffUser, staff_id)
    assert user is not None
    return user


async def change_account(api: Api, staff_id: str, **values: Any) -> None:
    async with transaction(api.sessions) as session:
        user = await session.get(StaffUser, staff_id)
        assert user is not None
        for name, value in values.items():
            setattr(user, name, value)


async def change_sessions(api: Api, staff_id: str, **values: Any) -> None:
    async with transaction(api.sessions) as session:
        rows = await session.exec(select(StaffSession).where(StaffSession.staff_id == staff_id))
        for row in rows:
            for name, value in values.items():
                setattr(row, name, value)


async def test_a_nurse_signs_in_and_uses_the_api_with_the_session(api: Api) -> None:
    staff_id = await nurse(api)
    response = await sign_in(api, "  Wang.Nurse ", PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"].startswith("cps_")
    assert body["staff"]["id"] == staff_id
    assert body["staff"]["username"] == "wang.nurse"
    assert body["staff"]["must_change_password"] is False
    lifetime = datetime.fromisoformat(body["expires_at"]) - utcnow()
    assert abs(lifetime - timedelta(hours=api.settings.staff_session_hours)) < timedelta(minutes=1)

    me = await api.http.get("/api/auth/me", headers=auth(body["token"]))
    assert me.status_code == 200
    assert me.json()["staff"]["name"] == "王护士"
    assert me.json()["session_expires_at"] is not None
    tasks = await api.http.get("/api/tasks", headers=auth(body["token"]))
    assert tasks.status_code == 200

    async with api.sessions() as session:
        stored = (await session.exec(select(StaffSession))).one()
    # Only a digest of the token is kept.
    assert stored.token_sha256 != body["token"]
    assert body["token"] not in str(stored.model_dump())
    assert (await account(api, staff_id)).last_sign_in_at is not None
    assert await actions(api, staff_id) == ["staff.signed_in"]


async def test_wrong_password_and_unknown_user_get_the_same_answer(api: Api) -> None:
    staff_id = await nurse(api)
    wrong = await sign_in(api, "wang.nurse", "not-the-password")
    unknown = await sign_in(api, "nobody.here", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["detail"][0]["loc"] == ["body", "password"]
    assert "not-the-password" not in wrong.text
    assert (await account(api, staff_id)).failed_logins == 1
    assert await actions(api, staff_id) == ["staff.sign_in_failed"]
    async with api.sessions() as session:
        unknown_rows = (
            await session.exec(select(AuditEntry).where(AuditEntry.target_id == "unknown"))
        ).all()
    assert [r.detail for r in unknown_rows] == [
        {"reason": "unknown_user", "username": "nobody.here"}
    ]
    # No password, hash or token ever reaches the audit trail.
    async with api.sessions() as session:
        trail = " ".join(str(r.detail) for r in (await session.exec(select(AuditEntry))).all())
    assert PASSWORD not in trail
    assert "not-the-password" not in trail
    assert "argon2" not in trail


async def test_empty_fields_are_named(api: Api) -> None:
    before = await api.counts()
    response = await api.http.post("/api/auth/sign-in", json={"username": "wang.nurse"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]
    # A body of the wrong shape would normally be repeated in the error: not on these routes.
    leaky = await api.http.post("/api/auth/sign-in", json=["wang.nurse", PASSWORD])
    assert leaky.status_code == 422
    assert leaky.json()["detail"][0]["loc"] == ["body"]
    assert PASSWORD not in leaky.text
    assert await api.counts() == before


async def test_five_failures_lock_the_account_until_the_lock_ends(api: Api) -> None:
    staff_id = await nurse(api)
    limit = api.settings.staff_max_failed_sign_ins
    for _ in range(limit - 1):
        assert (await sign_in(api, "wang.nurse", "wrong-password")).status_code == 401
    locking = await sign_in(api, "wang.nurse", "wrong-password")
    assert locking.status_code == 429
    assert locking.json()["detail"][0]["type"] == "account_locked"
    assert int(locking.headers["retry-after"]) > 0

    # While locked, the right password gets exactly the answer a wrong one gets.
    right = await sign_in(api, "wang.nurse", PASSWORD)
    wrong = await sign_in(api, "wang.nurse", "wrong-password")
    assert right.status_code == wrong.status_code == 429
    assert right.json() == wrong.json()
    locked = await account(api, staff_id)
    assert locked.locked_until is not None
    assert locked.locked_until > utcnow() + timedelta(minutes=14)
    trail = await actions(api, staff_id)
    assert trail.count("staff.locked") == 1
    assert trail.count("staff.sign_in_failed") == limit + 2

    # The lock ends (moved into the past rather than waited for).
    await change_account(api, staff_id, locked_until=utcnow() - timedelta(seconds=1))
    after = await sign_in(api, "wang.nurse", PASSWORD)
    assert after.status_code == 200
    unlocked = await account(api, staff_id)
    assert unlocked.failed_logins == 0
    assert unlocked.locked_until is None


async def test_a_session_ends_at_its_absolute_and_idle_limits(api: Api) -> None:
    staff_id = await nurse(api)
    token = (await sign_in(api, "wang.nurse", PASSWORD)).json()["token"]

    # Use refreshes the idle timer.
    await change_sessions(api, staff_id, last_seen_at=utcnow() - timedelta(minutes=10))
    assert (await api.http.get("/api/auth/me", headers=auth(token))).status_code == 200
    async with api.sessions() as session:
        seen = (await session.exec(select(StaffSession))).one().last_seen_at
    assert utcnow() - seen < timedelta(minutes=1)
    # So does a request the API refuses after knowing who asks: the nurse was at the screen.
    await change_sessions(api, staff_id, last_seen_at=utcnow() - timedelta(minutes=10))
    assert (await api.http.get("/api/tasks/no-such-task", headers=auth(token))).status_code == 404
    async with api.sessions() as session:
        seen = (await session.exec(select(StaffSession))).one().last_seen_at
    assert utcnow() - seen < timedelta(minutes=1)

    idle = timedelta(minutes=api.settings.staff_session_idle_minutes)
    await change_sessions(api, staff_id, last_seen_at=utcnow() - idle - timedelta(seconds=1))
    expired = await api.http.get("/api/auth/me", headers=auth(token))
    assert expired.status_code == 401
    assert expired.headers["www-authenticate"] == "Bearer"

    second = (await sign_in(api, "wang.nurse", PASSWORD)).json()["token"]
    await change_sessions(api, staff_id, expires_at=utcnow() - timedelta(seconds=1))
    assert (await api.http.get("/api/tasks", headers=auth(second))).status_code == 401


async def test_sign_out_revokes_the_session(api: Api) -> None:
    staff_id = await nurse(api)
    token = (await sign_in(api, "wang.nurse", PASSWORD)).json()["token"]
    other = (await sign_in(api, "wang.nurse", PASSWORD)).json()["token"]
    out = await api.http.post("/api/auth/sign-out", headers=auth(token))
    assert out.status_code == 204
    assert (await api.http.get("/api/auth/me", headers=auth(token))).status_code == 401
    # Only that session: the other device stays signed in.
    assert (await api.http.get("/api/auth/me", headers=auth(other))).status_code == 200
    assert "staff.signed_out" in await actions(api, staff_id)


async def test_a_deactivated_persons_session_is_refused(api: Api) -> None:
    staff_id = await nurse(api)
    token = (await sign_in(api, "wang.nurse", PASSWORD)).json()["token"]
    admin = await add_staff(api.sessions, StaffRole.ADMIN, None, "管理员")
    done = await api.http.post(f"/api/admin/staff/{staff_id}/deactivate", headers=auth(admin))
    assert done.status_code == 200
    assert done.json()["sessions_revoked"] == 1
    assert (await api.http.get("/api/auth/me", headers=auth(token))).status_code == 401
    # Even a session the revocation missed is refused while the account is inactive.
    await change_sessions(api, staff_id, revoked_at=None)
    assert (await api.http.get("/api/auth/me", headers=auth(token))).status_code == 401
    assert (await sign_in(api, "wang.nurse", PASSWORD)).status_code == 401


async def test_an_administrator_enrols_totp_and_then_needs_it(api: Api) -> None:
    admin_id = await add_person(
        api.sessions,
        api.settings,
        username="admin.li",
        password=PASSWORD,
        role=StaffRole.ADMIN,
        department_code=None,
        name="李管理员",
    )
    token = (await sign_in(api, "admin.li", PASSWORD)).json()["token"]
    enrol = await api.http.post("/api/auth/totp/enrol", headers=auth(token))
    assert enrol.status_code == 200
    uri = enrol.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/")
    assert "admin.li" in uri
    secret = enrol.json()["secret"]
    totp = pyotp.TOTP(secret)

    # Not yet confirmed: sign-in needs no code.
    assert (await sign_in(api, "admin.li", PASSWORD)).status_code == 200
    bad = await api.http.post(
        "/api/auth/totp/confirm", json={"code": "000000"}, headers=auth(token)
    )
    if totp.now() != "000000":
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "code"]
    confirmed = await api.http.post(
        "/api/auth/totp/confirm", json={"code": totp.now()}, headers=auth(token)
    )
    assert confirmed.status_code == 200
    assert confirmed.json() == {"totp_enabled": True}

    missing = await sign_in(api, "admin.li", PASSWORD)
    assert missing.status_code == 401
    assert missing.json()["detail"][0]["loc"] == ["body", "totp_code"]
    assert missing.json()["detail"][0]["type"] == "totp_required"
    wrong = await sign_in(api, "admin.li", PASSWORD, totp_code="12345x")
    assert wrong.status_code == 401
    assert wrong.json()["detail"][0]["type"] == "totp_invalid"
    # A wrong password says nothing about the code.
    assert (await sign_in(api, "admin.li", "nope-nope-nope")).json()["detail"][0]["loc"] == [
        "body",
        "password",
    ]

    # The next step's code (the one used to confirm cannot be used again).
    code = totp.at(utcnow() + timedelta(seconds=30))
    ok = await sign_in(api, "admin.li", PASSWORD, totp_code=code)
    assert ok.status_code == 200, ok.text
    assert ok.json()["staff"]["totp_enabled"] is True
    replay = await sign_in(api, "admin.li", PASSWORD, totp_code=code)
    assert replay.status_code == 401
    assert replay.json()["detail"][0]["type"] == "totp_invalid"

    again = await api.http.post("/api/auth/totp/enrol", headers=auth(token))
    assert again.status_code == 409
    trail = await actions(api, admin_id)
    assert "staff.totp_enrolment_started" in trail
    assert "staff.totp_enabled" in trail
    async with api.sessions() as session:
        details = " ".join(str(r.detail) for r in (await session.exec(select(AuditEntry))).all())
    assert secret not in details


async def test_totp_enrolment_is_for_administrators_who_sign_in(api: Api) -> None:
    await nurse(api)
    token = (await sign_in(api, "wang.nurse", PASSWORD)).json()["token"]
    assert (await api.http.post("/api/auth/totp/enrol", headers=auth(token))).status_code == 403
    # An administrator's static token (make run's dev-admin) has no sign-in to protect.
    static_admin = await add_staff(api.sessions, StaffRole.ADMIN, None, "管理员")
    enrol = await api.http.post("/api/auth/totp/enrol", headers=auth(static_admin))
    assert enrol.status_code == 409


async def test_a_one_time_password_must_be_changed_before_anything_else(api: Api) -> None:
    admin = await add_staff(api.sessions, StaffRole.ADMIN, None, "管理员")
    created = await api.http.post(
        "/api/admin/staff",
        json={
            "name": "周护士",
            "role": "nurse",
            "username": "zhou",
            "department_code": "cardiology",
        },
        headers=auth(admin),
    )
    assert created.status_code == 201, created.text
    one_time = created.json()["one_time_password"]
    staff_id = created.json()["staff"]["id"]

    signed = await sign_in(api, "zhou", one_time)
    assert signed.status_code == 200
    assert signed.json()["staff"]["must_change_password"] is True
    token = signed.json()["token"]
    other = (await sign_in(api, "zhou", one_time)).json()["token"]
    assert (await api.http.get("/api/tasks", headers=auth(token))).status_code == 403
    assert (await api.http.get("/api/auth/me", headers=auth(token))).status_code == 200

    async def change(current: str, new: str) -> httpx.Response:
        return await api.http.post(
            "/api/auth/password",
            json={"current_password": current, "new_password": new},
            headers=auth(token),
        )

    for weak in ("short", "ZHOU", "zhou      "):
        refused = await change(one_time, weak)
        assert refused.status_code == 422, weak
        assert refused.json()["detail"][0]["loc"] == ["body", "new_password"]
        assert weak not in refused.text
    wrong = await change("not-the-one-time", "a-much-better-password")
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"] == ["body", "current_password"]
    assert (await change(one_time, "a-much-better-password")).status_code == 204

    assert (await api.http.get("/api/tasks", headers=auth(token))).status_code == 200
    # The other session ended; the old password no longer works.
    assert (await api.http.get("/api/auth/me", headers=auth(other))).status_code == 401
    assert (await sign_in(api, "zhou", one_time)).status_code == 401
    assert (await sign_in(api, "zhou", "a-much-better-password")).status_code == 200
    assert "staff.password_changed" in await actions(api, staff_id)


async def test_a_hash_made_with_old_parameters_is_replaced_at_sign_in(api: Api) -> None:
    staff_id = await nurse(api)
    cheap = PasswordHasher(time_cost=1, memory_cost=19456, parallelism=1)
    await change_account(api, staff_id, password_hash=cheap.hash(PASSWORD))
    assert (await sign_in(api, "wang.nurse", PASSWORD)).status_code == 200
    rehashed = (await account(api, staff_id)).password_hash
    assert rehashed is not None
    assert rehashed.startswith("$argon2id$")
    assert f"m={api.settings.staff_password_memory_kib},t=" in rehashed


@asynccontextmanager
async def production_api(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """The same database and servers, with settings valid for production."""
    settings = make_settings(
        environment="production",
        allow_demo_clock=False,
        database_url=api.settings.database_url,
        his_base_url=api.his.url,
        temporal_task_queue=api.settings.temporal_task_queue,
    )
    his = HisClient.create(api.his.url, TEST_HIS_API_KEY, timeout_seconds=2.0)
    container = Container.build(settings, api.sessions, api.temporal, his)
    transport = httpx.ASGITransport(app=create_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url="http://carepath.test") as http:
        yield http
    await his.close()


async def test_production_refuses_a_persons_static_token_but_not_an_integrations(
    api: Api,
) -> None:
    person = await add_staff(api.sessions, StaffRole.NURSE, "cardiology")
    admin = await add_staff(api.sessions, StaffRole.ADMIN, None, "管理员")
    integration = await add_staff(api.sessions, StaffRole.INTEGRATION, None, "体检系统")
    await nurse(api)
    async with production_api(api) as http:
        refused = await http.get("/api/tasks", headers=auth(person))
        assert refused.status_code == 401
        assert "sign-in" in refused.json()["detail"]
        assert (await http.get("/api/admin/staff", headers=auth(admin))).status_code == 401
        me = await http.get("/api/auth/me", headers=auth(integration))
        assert me.status_code == 200
        assert me.json()["staff"]["role"] == "integration"
        # People sign in instead.
        signed = await http.post(
            "/api/auth/sign-in", json={"username": "wang.nurse", "password": PASSWORD}
        )
        assert signed.status_code == 200
        token = signed.json()["token"]
        assert (await http.get("/api/tasks", headers=auth(token))).status_code == 200
    # Outside production the same static token still works (make run, the test suite).
    assert (await api.http.get("/api/tasks", headers=auth(person))).status_code == 200


async def test_tokens_are_found_whatever_they_look_like_and_unknown_ones_refused(
    api: Api,
) -> None:
    # A static token is looked for first unless it looks like a sign-in token; one that does
    # (an administrator may choose a machine's token) is still found.
    async with transaction(api.sessions) as session:
        await create_staff(
            session,
            name="体检系统",
            role=StaffRole.INTEGRATION,
            department_code=None,
            token="cps_chosen-by-the-administrator-0123456789",
        )
    await nurse(api)
    signed = await sign_in(api, "wang.nurse", PASSWORD)
    session_token = signed.json()["token"]

    machine = await api.http.get(
        "/api/auth/me", headers=auth("cps_chosen-by-the-administrator-0123456789")
    )
    person = await api.http.get("/api/auth/me", headers=auth(session_token))

    assert machine.json()["staff"]["role"] == "integration"
    assert person.json()["staff"]["role"] == "nurse"
    for unknown in ("cps_" + "x" * 43, "no-such-token-anywhere"):
        refused = await api.http.get("/api/auth/me", headers=auth(unknown))
        assert refused.status_code == 401
        assert refused.json()["detail"] == "invalid or revoked token"
