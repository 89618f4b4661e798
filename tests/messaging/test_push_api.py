"""The push interface (MSG-5), templates (MSG-2) and patients' preferences (MSG-6) through HTTP.
Bad input is a 422 naming the field and leaves nothing behind."""

from __future__ import annotations

from typing import Any

from sqlmodel import SQLModel, func, select
from temporalio.testing import WorkflowEnvironment

from core.models import Patient, StaffRole
from harness.staff import add_staff
from tests.messaging.conftest import NOTICE, Stack, StackFactory


async def _counts(stack: Stack) -> dict[str, int]:
    result = {}
    async with stack.sessions() as session:
        for name, table in SQLModel.metadata.tables.items():
            result[name] = int((await session.exec(select(func.count()).select_from(table))).one())
    return result


def _locs(response: Any) -> list[list[str | int]]:
    return [error["loc"] for error in response.json()["detail"]]


async def test_bad_pushes_name_the_field_and_write_nothing(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env) as stack:
        patient = await stack.patient()
        before = await _counts(stack)
        to_patient = {"patient_id": patient.his_patient_id}
        cases = {
            ("body", "to", "phone"): await stack.push(idempotency_key="k1", to={"phone": "12345"}),
            ("body", "template"): await stack.push(
                idempotency_key="k2", to=to_patient, template="no_such_template"
            ),
            ("body", "variables", "content"): await stack.push(
                idempotency_key="k3", to=to_patient, variables={"title": "停诊通知"}
            ),
            ("body", "to"): await stack.push(
                idempotency_key="k4",
                to={"patient_id": patient.his_patient_id, "phone": "13800138000"},
            ),
        }
        for loc, response in cases.items():
            assert response.status_code == 422, (loc, response.text)
            assert list(loc) in _locs(response), response.text
        unknown = await stack.push(idempotency_key="k5", to={"patient_id": "P-NOBODY"})
        assert unknown.status_code == 404
        assert "P-NOBODY" in unknown.json()["detail"]
        assert await _counts(stack) == before


async def test_e164_and_mainland_numbers_are_accepted(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        local = await stack.push(idempotency_key="n1", to={"phone": "138 0013 8000"})
        foreign = await stack.push(idempotency_key="n2", to={"phone": "+447700900123"})
        assert local.status_code == foreign.status_code == 202
        await stack.wait_status(foreign.json()["message_id"], "delivered")
        await stack.wait_status(local.json()["message_id"], "delivered")

    assert sorted(m.to for m in stack.twilio.messages.values()) == [
        "+447700900123",
        "+8613800138000",
    ]


async def test_a_retried_push_returns_the_first_message(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        patient = await stack.patient()
        to = {"patient_id": patient.his_patient_id}
        first = await stack.push(idempotency_key="same", to=to)
        again = await stack.push(idempotency_key="same", to=to)
        other = await stack.push(
            idempotency_key="same", to=to, variables={**NOTICE, "content": "改约"}
        )
        await stack.wait_status(first.json()["message_id"], "delivered")

    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["message_id"] == first.json()["message_id"]
    assert again.json()["duplicate"] is True
    assert other.status_code == 409
    assert len(stack.twilio.messages) == 1


async def test_send_log_search_and_detail(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        alice = await stack.patient(phone="13800138011")
        bob = await stack.patient(phone="13800138022")
        for key, who in (("s1", alice), ("s2", bob), ("s3", alice)):
            response = await stack.push(idempotency_key=key, to={"patient_id": who.his_patient_id})
            await stack.wait_status(response.json()["message_id"], "delivered")
        admin = await add_staff(stack.sessions, StaffRole.ADMIN, None, name="管理员")
        found = await stack.http.get(
            "/api/messages",
            params={"receiver": "+86 138-0013-8011", "status": "delivered", "channel": "sms"},
            headers=stack.auth(admin),
        )
        assert found.status_code == 200
        page = found.json()
        assert page["total"] == 2
        assert {m["recipient_masked"] for m in page["items"]} == {"138****8011"}
        detail = await stack.http.get(
            f"/api/messages/{page['items'][0]['id']}", headers=stack.auth(admin)
        )
        assert detail.status_code == 200
        [attempt] = detail.json()["attempts"]
        assert attempt["channel"] == "sms"
        assert attempt["provider_message_id"].startswith("SM")
        # Department staff do not see hospital-wide pushes.
        nurse = await add_staff(stack.sessions, StaffRole.NURSE, "cardiology")
        hidden = await stack.http.get("/api/messages", headers=stack.auth(nurse))
        assert hidden.json()["total"] == 0


async def test_templates_are_checked_when_saved_and_previewed(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        nurse = await add_staff(stack.sessions, StaffRole.NURSE, "cardiology")
        headers = stack.auth(nurse)
        base = {"code": "diet_tips", "owner": "team", "category": "education", "name": "饮食宣教"}

        undeclared = await stack.http.post(
            "/api/message-templates",
            json={
                **base,
                "variables": ["link"],
                "sms": "{{ patient_name }}，请阅读{{ title }}：{{ link }}",
            },
            headers=headers,
        )
        assert undeclared.status_code == 422
        assert ["body", "sms"] in _locs(undeclared)
        assert "title" in undeclared.text

        unsupplied = await stack.http.post(
            "/api/message-templates",
            json={**base, "variables": ["ward_phone"], "sms": "请致电{{ ward_phone }}"},
            headers=headers,
        )
        assert unsupplied.status_code == 422
        assert ["body", "variables"] in _locs(unsupplied)

        too_long = await stack.http.post(
            "/api/message-templates",
            json={**base, "variables": ["link"], "sms": "低盐低脂饮食。" * 60 + "{{ link }}"},
            headers=headers,
        )
        assert too_long.status_code == 422
        assert "segments" in too_long.text

        broken = await stack.http.post(
            "/api/message-templates",
            json={**base, "variables": [], "sms": "{{ patient_name "},
            headers=headers,
        )
        assert broken.status_code == 422
        assert "syntax" in broken.text

        # A WeChat field named with a NUL (found by the fuzzer: PostgreSQL refused it, a 500).
        nul = await stack.http.post(
            "/api/message-templates",
            json={
                **base,
                "variables": [],
                "sms": "请按时服药",
                "wechat": {"data": {"x\u0000": "y"}},
            },
            headers=headers,
        )
        assert nul.status_code == 422
        assert any(loc[:3] == ["body", "wechat", "data"] for loc in _locs(nul))

        good = await stack.http.post(
            "/api/message-templates",
            json={
                **base,
                "variables": ["article_title", "link"],
                "sms": "【{{ hospital_name }}】{{ patient_name }}您好，"
                "请阅读《{{ article_title }}》：{{ link }} ",
            },
            headers=headers,
        )
        assert good.status_code == 201, good.text
        duplicate = await stack.http.post(
            "/api/message-templates", json={**good.json(), **base, "sms": "x"}, headers=headers
        )
        assert duplicate.status_code in (409, 422)

        preview = await stack.http.post(
            "/api/message-templates/preview", json={"code": "diet_tips"}, headers=headers
        )
        assert preview.status_code == 200
        shown = preview.json()
        assert "冠心病患者出院后的饮食与运动" in shown["sms"]
        assert shown["sms_encoding"] == "UCS-2"
        assert shown["sms_segments"] == 2
        listed = await stack.http.get("/api/message-templates", headers=headers)
        codes = {(t["code"], t["owner_type"]) for t in listed.json()}
        assert {("diet_tips", "team"), ("followup_invite", "platform")} <= codes


async def test_a_team_template_overrides_the_platform_one_for_its_department(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        nurse = await add_staff(stack.sessions, StaffRole.NURSE, "cardiology")
        created = await stack.http.post(
            "/api/message-templates",
            json={
                "code": "notice_generic",
                "owner": "team",
                "category": "notice",
                "name": "心内科通知",
                "variables": ["title", "content"],
                "sms": "【{{ hospital_name }}心内科】{{ title }}：{{ content }}",
            },
            headers=stack.auth(nurse),
        )
        assert created.status_code == 201, created.text
        patient = await stack.patient()
        response = await stack.http.post(
            "/api/messages",
            json={
                "idempotency_key": "team-1",
                "to": {"patient_id": patient.his_patient_id},
                "template": "notice_generic",
                "variables": NOTICE,
            },
            headers=stack.auth(nurse),
        )
        assert response.status_code == 202, response.text
        message = await stack.wait_status(response.json()["message_id"], "delivered")

    assert message.body.startswith("【示例医院心内科】停诊通知")
    assert message.department_code == "cardiology"
    assert message.sender.startswith("staff:")


async def test_patient_preferences_are_validated(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env) as stack:
        patient = await stack.patient()
        url = f"/api/patients/{patient.id}/messaging"
        bad = await stack.http.put(
            url,
            json={"preferred_channel": "fax", "opt_outs": ["education", "payment"]},
            headers=stack.auth(),
        )
        assert bad.status_code == 422
        assert _locs(bad) == [["body", "preferred_channel"], ["body", "opt_outs", 1]]
        good = await stack.http.put(
            url,
            json={
                "preferred_channel": "wechat",
                "wechat_openid": "oBound000001",
                "opt_outs": ["education"],
            },
            headers=stack.auth(),
        )
        assert good.status_code == 200
        shown = (await stack.http.get(url, headers=stack.auth())).json()

    assert shown["preferred_channel"] == "wechat"
    assert shown["wechat_openid"] == "oBound000001"
    assert shown["opt_outs"] == ["education"]
    assert "payment" not in shown["optional_categories"]


async def test_a_push_to_a_patient_only_the_his_knows_looks_them_up_and_stores_them(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        # P0003 is in the HIS's master data but has never been seen by CarePath.
        response = await stack.push(idempotency_key="his-1", to={"patient_id": "P0003"})
        assert response.status_code == 202, response.text
        message = await stack.wait_status(response.json()["message_id"], "sent", "delivered")
        async with stack.sessions() as session:
            stored = (
                await session.exec(select(Patient).where(Patient.his_patient_id == "P0003"))
            ).one()

    assert stored.name == "王志强"
    assert message.patient_id == stored.id
    [received] = stack.twilio.messages.values()
    assert received.to == "+8613700137003"
