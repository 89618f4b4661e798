"""Signing in to the workbench (/w): the session in a cookie only /w receives, the one-time
password changed first, sign-out ending the session, a form from another site or without its
token refused, and never a redirect to another site after signing in."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlmodel import select

from api.workbench.auth import COOKIE, POLL_HEADER
from core.models import AuditEntry, StaffRole, StaffSession, utcnow
from harness.staff import add_person
from tests.api.conftest import Api

PASSWORD = "Ward-Nurse-2026!"
NEW_PASSWORD = "Ward-Nurse-2027!"


async def _sign_in(api: Api, password: str = PASSWORD, next_path: str = "/w") -> httpx.Response:
    api.http.cookies.clear()
    return await api.http.post(
        "/w/sign-in", data={"username": "wang.nurse", "password": password, "next": next_path}
    )


def _csrf(page: httpx.Response) -> str:
    marker = 'name="csrf" value="'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]


async def test_sign_in_sets_a_cookie_for_the_workbench_only_and_sign_out_ends_it(api: Api) -> None:
    await add_person(api.sessions, api.settings, username="wang.nurse", password=PASSWORD)
    wrong = await _sign_in(api, "not-the-password")
    assert wrong.status_code == 401
    assert "用户名或密码错误" in wrong.text
    assert 'value="wang.nurse"' in wrong.text  # the name stays; the password does not
    empty = await api.http.post("/w/sign-in", data={"username": "", "password": ""})
    assert empty.status_code == 422
    assert "请输入用户名" in empty.text
    assert "请输入密码" in empty.text

    done = await _sign_in(api, next_path="//evil.example/w/queue")
    assert done.status_code == 303
    assert done.headers["location"] == "/w"  # never to another site
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "Path=/w" in cookie
    assert "SameSite=strict" in cookie
    token = api.http.cookies[COOKIE]
    # The API does not take the cookie: a page elsewhere cannot use a signed-in browser.
    assert (await api.http.get("/api/tasks")).status_code == 401

    queue = await api.http.get("/w/queue")
    assert queue.status_code == 200
    assert "我的待办" in queue.text
    no_token = await api.http.post("/w/sign-out", data={})
    assert no_token.status_code == 403
    elsewhere = await api.http.post(
        "/w/sign-out", data={"csrf": _csrf(queue)}, headers={"Origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403
    out = await api.http.post("/w/sign-out", data={"csrf": _csrf(queue)})
    assert out.status_code == 303
    api.http.cookies.set(COOKIE, token, path="/w")
    again = await api.http.get("/w/queue")
    assert again.status_code == 303
    assert again.headers["location"].startswith("/w/sign-in?next=/w/queue")
    told = await api.http.get(again.headers["location"])
    assert "会话已结束，请重新登录" in told.text
    forged = await api.http.get("/w/sign-in", params={"why": "系统升级，请拨打400-000-0000"})
    assert "400-000-0000" not in forged.text  # a link cannot put its own words on the page


async def test_a_one_time_password_is_changed_before_any_page(api: Api) -> None:
    staff_id = await add_person(
        api.sessions,
        api.settings,
        username="wang.nurse",
        password=PASSWORD,
        role=StaffRole.NURSE,
        must_change_password=True,
    )
    assert (await _sign_in(api)).status_code == 303
    sent = await api.http.get("/w/queue")
    assert (sent.status_code, sent.headers["location"]) == (303, "/w/password")
    form = await api.http.get("/w/password")
    assert "首次登录请先修改" in form.text
    csrf = _csrf(form)
    mismatch = await api.http.post(
        "/w/password",
        data={
            "csrf": csrf,
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_password": "something-else-2027!",
        },
    )
    assert mismatch.status_code == 422
    assert "两次输入的新密码不一致" in mismatch.text
    changed = await api.http.post(
        "/w/password",
        data={
            "csrf": csrf,
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    assert changed.status_code == 303
    assert (await api.http.get("/w/queue")).status_code == 200
    async with api.sessions() as session:
        actions = (
            await session.exec(select(AuditEntry.action).where(AuditEntry.actor_id == staff_id))
        ).all()
    assert "staff.password_changed" in actions


async def test_a_list_refreshing_itself_does_not_keep_an_unattended_screen_signed_in(
    api: Api,
) -> None:
    await add_person(api.sessions, api.settings, username="wang.nurse", password=PASSWORD)
    await _sign_in(api)
    left_at = utcnow() - timedelta(minutes=api.settings.staff_session_idle_minutes - 1)
    async with api.sessions() as session:
        row = (await session.exec(select(StaffSession))).one()
        row.last_seen_at = left_at
        await session.commit()

    polled = await api.http.get("/w/queue", headers={POLL_HEADER: "1"})
    assert polled.status_code == 200
    async with api.sessions() as session:
        row = (await session.exec(select(StaffSession))).one()
    assert row.last_seen_at == left_at  # the idle timer still runs: nobody is at the screen

    clicked = await api.http.get("/w/alerts")
    assert clicked.status_code == 200
    async with api.sessions() as session:
        row = (await session.exec(select(StaffSession))).one()
    assert row.last_seen_at > left_at

    # A token that is not even ASCII is refused like any wrong one, not a server error.
    forged = await api.http.post("/w/sign-out", data={"csrf": "令牌"})
    assert forged.status_code == 403
    # Nor is a NUL in a field, which no person types and the database would refuse.
    nul = await api.http.post("/w/sign-out", data={"csrf": _csrf(clicked), "x": "a\x00b"})
    assert nul.status_code == 400
    assert "无法识别的字符" in nul.text
