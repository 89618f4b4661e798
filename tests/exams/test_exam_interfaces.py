"""Every return code of the exam interfaces (seed 003, US-K1..US-H5), produced where its
condition holds, through real HTTP: the platform calls the vendor simulator on loopback and the
simulator pushes to the platform, signed. Nothing is half-written on a failure, and a push
delivered twice changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import func, select

from core.models import (
    Alert,
    ExamAccount,
    ExamBooking,
    ExamDictionaryChange,
    ExamItemMapping,
    ExamResult,
    ExamResultHold,
    ExamVendorItem,
    OutboundMessage,
)
from harness.waiting import eventually
from harness.workers import running_worker
from simulators.faults import FaultPlan, FaultRule
from tests.exams.conftest import ExamStack, window_refusals

ZHANG = {"name": "张建国", "sex": "1", "birth_date": "19560312"}


def _last(outcome: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = outcome["answers"][-1]
    return answer["status_code"], answer["response"]


async def _count(stack: ExamStack, model: Any, *where: Any) -> int:
    async with stack.api.sessions() as session:
        query = select(func.count()).select_from(model)
        for condition in where:
            query = query.where(condition)
        return int((await session.exec(query)).one())


async def _bound(stack: ExamStack, **patient: Any) -> Any:
    found = await stack.patient(**patient)
    bound = await stack.bind(found)
    assert bound.status_code == 201, bound.text
    return found


# ---- US-K1 ---------------------------------------------------------------------------------


async def test_binding_finds_or_creates_the_exam_account_after_consent(
    exam_stack: ExamStack,
) -> None:
    stack = exam_stack
    zhang = await stack.patient()
    refused = await stack.api.http.post(
        "/api/exams/accounts",
        json={"patient_id": zhang.id, "consent_version": "PX-2026-1", "accepted": False},
        headers=stack.auth(),
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "accepted"]

    found = await stack.bind(zhang)
    assert found.status_code == 201, found.text
    assert found.json() == {
        "code": "0",
        "level": "成功",
        "message": "绑定成功",
        "account_no": "TJ000101",
    }
    again = await stack.bind(zhang)
    assert again.status_code == 200
    assert again.json()["account_no"] == "TJ000101"

    # 103: the vendor has no account for her and creates one.
    wang = await stack.patient(
        name="王芳", sex="F", birth_date=date(1970, 5, 6), id_number="110101197005060044"
    )
    created = await stack.bind(wang)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["code"], body["level"]) == ("103", "提示")
    assert body["message"] == "姓名、性别、出生日期、身份证号，查无账号，体检机构已新建账号"
    assert body["account_no"] in stack.vendor.accounts
    async with stack.api.sessions() as session:
        account = await session.get(ExamAccount, wang.id)
    assert account is not None
    assert (account.consent_version, account.created_by_vendor) == ("PX-2026-1", True)

    # 104: the vendor is down (nothing stored), or the account belongs to someone else.
    li = await stack.patient(
        name="李秀英", sex="F", birth_date=date(1962, 7, 18), id_number="110101196207180022"
    )
    await stack.sim.put(
        "/sim/faults",
        json=FaultPlan(
            rules=[FaultRule(path_prefix="/api/us-k1", status=503, count=3)]
        ).model_dump(),
    )
    down = await stack.bind(li)
    assert down.status_code == 503
    assert down.json() == {
        "code": "104",
        "level": "错误",
        "message": "绑定失败！体检机构系统暂不可用，请稍后重试",
    }
    assert await _count(stack, ExamAccount, ExamAccount.patient_id == li.id) == 0
    await stack.sim.put("/sim/faults", json=FaultPlan().model_dump())
    twin = await stack.patient()  # the same person registered twice
    taken = await stack.bind(twin)
    assert taken.status_code == 409
    assert taken.json()["message"] == "绑定失败！该体检账号已绑定其他患者"


# ---- US-K2 ---------------------------------------------------------------------------------


async def test_a_date_outside_the_next_two_weeks_is_refused_naming_both_dates(
    exam_stack: ExamStack,
) -> None:
    stack = exam_stack
    zhang = await _bound(stack)
    today = datetime.now(UTC).astimezone(stack.api.settings.tz).date()
    for day in (today - timedelta(days=1), today + timedelta(days=16)):
        refused = await stack.api.http.post(
            "/api/exams/bookings",
            json={"patient_id": zhang.id, "exam_date": day.isoformat()},
            headers=stack.auth(),
        )
        assert refused.status_code == 422
        body = refused.json()
        assert body["code"] == "201"
        assert body["message"] in window_refusals(today)
        assert body["detail"][0]["loc"] == ["body", "exam_date"]
    assert await _count(stack, ExamBooking) == 0


async def test_a_booking_the_vendor_refuses_ends_with_202_and_alerts_the_doctors(
    exam_stack: ExamStack,
) -> None:
    stack = exam_stack
    zhang = await _bound(stack)
    day = datetime.now(UTC).astimezone(stack.api.settings.tz).date() + timedelta(days=3)
    await stack.sim.put("/sim/full-dates", json=[f"{day:%Y%m%d}"])
    async with running_worker(
        stack.api.temporal, stack.api.settings.temporal_task_queue, stack.api.settings,
        stack.api.sessions,
    ):  # fmt: skip
        asked = await stack.api.http.post(
            "/api/exams/bookings",
            json={"patient_id": zhang.id, "exam_date": day.isoformat()},
            headers=stack.auth(),
        )
        assert asked.status_code == 201, asked.text
        booking_id = asked.json()["id"]
        reviewed = await stack.api.http.post(
            f"/api/exams/bookings/{booking_id}/review",
            json={"ticked": ["C13-UBT"]},
            headers=stack.auth("doctor"),
        )
        assert reviewed.status_code == 200, reviewed.text

        async def failed() -> dict[str, Any] | None:
            row = await stack.api.http.get(
                f"/api/exams/bookings/{booking_id}", headers=stack.auth()
            )
            body: dict[str, Any] = row.json()
            return body if body["status"] == "failed" else None

        booking = await eventually(failed, what="the refused booking")
    assert (booking["last_code"], booking["last_message"]) == ("202", "当日体检名额已满")
    async with stack.api.sessions() as session:
        alerts = (
            await session.exec(select(Alert).where(Alert.kind == "exam_booking_failed"))
        ).all()
    assert [a.summary for a in alerts] == ["体检预约失败：当日体检名额已满"]
    # The doctor's review went out: required items and the ticked optional one, no others.
    codes = [i["code"] for i in booking["booked_items"]]
    assert "C13-UBT" in codes
    assert "GASTROSCOPY" not in codes


# ---- US-H1 ---------------------------------------------------------------------------------


async def test_the_exam_list_needs_a_known_account_and_a_completed_questionnaire(
    exam_stack: ExamStack,
) -> None:
    stack = exam_stack

    async def ask(account_no: str) -> tuple[int, dict[str, Any]]:
        answer = (await stack.sim.post("/sim/exam-list", json={"account_no": account_no})).json()
        return answer["status_code"], answer["response"]

    assert await ask("TJ999999") == (
        404,
        {"code": "301", "level": "提示", "message": "查无记录。TJ999999"},
    )
    zhang = await _bound(stack)
    assert (await ask("TJ000101"))[1]["code"] == "301"  # no questionnaire answered yet
    await stack.answered(zhang, "phq-9", {"phq9": 12})
    status_code, body = await ask("TJ000101")
    assert status_code == 200
    assert body["code"] == "0"
    assert body["customer"] == ZHANG
    names = [i["name"] for i in body["items"]]
    assert names[:3] == ["收缩压", "舒张压", "体重指数"]
    # Optional items wait for the doctor: before the review only the required ones are listed.
    assert "心理健康评估" not in names


# ---- US-H2 ---------------------------------------------------------------------------------


async def test_every_code_of_the_exam_guide(exam_stack: ExamStack) -> None:
    stack = exam_stack
    day = f"{datetime.now(UTC) + timedelta(days=5):%Y%m%d}"
    zhang = await _bound(stack)

    def guide(account: str, exam_no: str, **customer: str) -> dict[str, Any]:
        return {
            "exam_no": exam_no,
            "account_no": account,
            "customer": {**ZHANG, **customer},
            "exam_date": day,
            "guide": "请于体检当日早晨空腹，携带身份证，7:30到门诊楼三楼体检中心报到。",
        }

    assert _last(await stack.push("guide", **guide("TJ999999", "EX-1"))) == (
        404,
        {"code": "301", "level": "提示", "message": "查无记录。TJ999999"},
    )
    status_code, body = _last(await stack.push("guide", **guide("TJ000101", "EX-1", name="张建")))
    assert (status_code, body["code"], body["message"]) == (422, "401", "客户信息不符。姓名")
    status_code, body = _last(
        await stack.push("guide", **guide("TJ000101", "EX-1", sex="2", birth_date="19560313"))
    )
    assert body["message"] == "客户信息不符。性别、出生日期"

    async with stack.failing_writes("exam_booking"):
        status_code, body = _last(await stack.push("guide", **guide("TJ000101", "EX-1")))
    assert (status_code, body["code"]) == (503, "402")
    assert body["message"].startswith("保存失败。数据库写入失败")
    assert await _count(stack, ExamBooking) == 0

    sent = await stack.push("guide", times=2, **guide("TJ000101", "EX-1"))
    assert [a["status_code"] for a in sent["answers"]] == [200, 200]
    assert sent["answers"][0]["response"] == {"code": "0", "level": "成功", "message": "成功。"}
    async with stack.api.sessions() as session:
        booking = (await session.exec(select(ExamBooking))).one()
        messages = (
            await session.exec(
                select(OutboundMessage).where(OutboundMessage.patient_id == zhang.id)
            )
        ).all()
    assert (booking.exam_no, booking.status, booking.requested_by) == ("EX-1", "guided", "vendor")
    assert booking.guide is not None
    assert "空腹" in booking.guide
    [message] = messages  # delivered twice, sent once
    assert message.template == "exam_guide"
    assert "携带身份证" in message.body

    # 403: nothing to reach the patient with; 405: she switched exam reminders off.
    wang = await _bound(
        stack,
        name="王芳",
        sex="F",
        birth_date=date(1970, 5, 6),
        id_number="110101197005060044",
        phone="",
    )
    [wang_account] = [
        a.account_no for a in stack.vendor.accounts.values() if a.id_number == "110101197005060044"
    ]
    wang_customer = {"name": "王芳", "sex": "2", "birth_date": "19700506"}
    status_code, body = _last(
        await stack.push("guide", **{**guide(wang_account, "EX-2"), "customer": wang_customer})
    )
    assert (status_code, body["code"]) == (422, "403")
    assert body["message"] == "消息生成失败。患者没有可用的手机号或微信"
    li = await _bound(
        stack,
        name="李秀英",
        sex="F",
        birth_date=date(1962, 7, 18),
        id_number="110101196207180022",
        opt_outs=["reminder"],
    )
    li_customer = {"name": "李秀英", "sex": "2", "birth_date": "19620718"}
    status_code, body = _last(
        await stack.push("guide", **{**guide("TJ000102", "EX-3"), "customer": li_customer})
    )
    assert (status_code, body["code"]) == (503, "405")
    assert body["message"] == "消息发送失败。患者已关闭检查提醒类消息"
    assert wang.id != li.id


# ---- US-H3 ---------------------------------------------------------------------------------


def _item(code: str, name: str, value: str, flag: str | None = None) -> dict[str, Any]:
    return {"item_code": code, "item_name": name, "value": value, "abnormal_flag": flag}


async def test_every_code_of_the_results_and_the_held_item_saved_once_mapped(
    exam_stack: ExamStack,
) -> None:
    stack = exam_stack
    await _bound(stack)
    now = datetime.now(UTC)

    def results(
        change: int, items: list[dict[str, Any]], at: datetime, **customer: str
    ) -> dict[str, Any]:
        return {
            "exam_no": "EX-9",
            "account_no": "TJ000101",
            "customer": {**ZHANG, **customer},
            "change_type": change,
            "items": items,
            "changed_at": at.isoformat(),
        }

    glucose = _item("V-GLU", "空腹血糖", "7.8", "H")
    density = _item("V-XYZ", "骨密度检测", "-2.7", "A")
    assert (
        _last(await stack.push("results", **{**results(1, [glucose], now), "account_no": "TJ0"}))[
            1
        ]["code"]
        == "301"
    )
    status_code, body = _last(
        await stack.push("results", **results(1, [glucose], now, birth_date="19600101"))
    )
    assert (status_code, body["message"]) == (422, "客户信息不符。出生日期")

    async with stack.failing_writes("exam_result"):
        status_code, body = _last(await stack.push("results", **results(1, [glucose], now)))
    assert (status_code, body["code"]) == (503, "502")
    assert await _count(stack, ExamResult) == 0
    assert await _count(stack, ExamBooking) == 0

    held = await stack.push("results", times=2, **results(1, [glucose, density], now))
    assert [a["status_code"] for a in held["answers"]] == [202, 202]
    assert held["answers"][-1]["response"] == {
        "code": "501",
        "level": "错误",
        "message": "无法匹配项目。骨密度检测",
    }
    assert await _count(stack, ExamResult) == 1
    [waiting] = (await stack.api.http.get("/api/exams/held", headers=stack.auth())).json()
    assert (waiting["vendor_code"], waiting["vendor_name"]) == ("V-XYZ", "骨密度检测")

    # Out of order: the edit (later) arrives before a re-sent add (earlier); the edit stands.
    edited = _item("V-GLU", "空腹血糖", "6.9", "H")
    assert (
        _last(await stack.push("results", **results(2, [edited], now + timedelta(minutes=5))))[0]
        == 200
    )
    assert (
        _last(await stack.push("results", **results(1, [glucose], now + timedelta(minutes=1))))[0]
        == 200
    )

    mapped = await stack.api.http.post(
        "/api/exams/mappings",
        json={"vendor_code": "V-XYZ", "standard_code": "BMD"},
        headers=stack.auth("care_manager"),
    )
    assert mapped.status_code == 200, mapped.text
    assert mapped.json()["resaved_exams"] == ["EX-9"]
    assert await _count(stack, ExamResultHold) == 0
    async with stack.api.sessions() as session:
        saved = {r.standard_code: r for r in (await session.exec(select(ExamResult))).all()}
        mapping = await session.get(ExamItemMapping, "V-GLU")
    assert saved["GLU"].value == "6.9"
    assert (saved["BMD"].value, saved["BMD"].abnormal, saved["BMD"].name) == (
        "-2.7",
        True,
        "骨密度",
    )
    assert mapping is not None
    assert mapping.mapped_by == "auto"  # matched by its name, remembered

    # 3: deleted, and a late add older than the delete does not bring it back.
    gone = _item("V-GLU", "空腹血糖", "")
    assert (
        _last(await stack.push("results", **results(3, [gone], now + timedelta(minutes=9))))[0]
        == 200
    )
    assert (
        _last(await stack.push("results", **results(1, [glucose], now + timedelta(minutes=2))))[0]
        == 200
    )
    booking = (await stack.api.http.get("/api/exams/bookings", headers=stack.auth())).json()
    [row] = booking["items"]
    detail = (
        await stack.api.http.get(f"/api/exams/bookings/{row['id']}", headers=stack.auth())
    ).json()
    assert [r["standard_code"] for r in detail["results"]] == ["BMD"]


# ---- US-H4 ---------------------------------------------------------------------------------


async def test_every_code_of_the_report(exam_stack: ExamStack) -> None:
    stack = exam_stack
    await _bound(stack)

    def report(account: str = "TJ000101", **customer: str) -> dict[str, Any]:
        return {
            "exam_no": "EX-7",
            "account_no": account,
            "customer": {**ZHANG, **customer},
            "report": "<h1>总检报告</h1><p>空腹血糖偏高，建议内分泌科随诊。</p>",
            "conclusions": ["空腹血糖偏高"],
        }

    assert _last(await stack.push("report", **report("TJ404")))[1]["code"] == "301"
    assert _last(await stack.push("report", **report(name="张三")))[1]["code"] == "401"
    async with stack.failing_writes("exam_booking"):
        status_code, body = _last(await stack.push("report", **report()))
    assert (status_code, body["code"]) == (503, "601")
    assert body["message"].startswith("保存失败。")
    assert await _count(stack, ExamBooking) == 0
    status_code, body = _last(await stack.push("report", times=2, **report()))
    assert (status_code, body["code"]) == (200, "0")
    async with stack.api.sessions() as session:
        booking = (await session.exec(select(ExamBooking))).one()
    assert booking.status == "reported"
    assert booking.conclusions == ["空腹血糖偏高"]


# ---- US-H5 ---------------------------------------------------------------------------------


async def test_dictionary_changes_are_applied_or_kept_and_retried(exam_stack: ExamStack) -> None:
    stack = exam_stack
    items = [
        {
            "code": "V-NEW1",
            "name": "糖化血红蛋白",
            "category_code": "C-BIO",
            "category_name": "生化",
        },
        {
            "code": "V-NEW2",
            "name": "同型半胱氨酸",
            "category_code": "C-BIO",
            "category_name": "生化",
        },
    ]
    status_code, body = _last(await stack.push("dictionary", change_type=1, items=items[:1]))
    assert (status_code, body["code"]) == (200, "0")
    async with stack.api.sessions() as session:
        mapping = await session.get(ExamItemMapping, "V-NEW1")
    assert mapping is not None
    assert mapping.standard_code == "HBA1C"  # known by name: mapped at once

    async with running_worker(
        stack.api.temporal, stack.api.settings.temporal_task_queue, stack.api.settings,
        stack.api.sessions,
    ):  # fmt: skip
        async with stack.failing_writes("exam_vendor_item"):
            status_code, body = _last(
                await stack.push("dictionary", change_type=1, items=items[1:])
            )
            assert (status_code, body) == (
                202,
                {"code": "701", "level": "错误", "message": "保存失败。"},
            )
            assert await _count(stack, ExamDictionaryChange) == 1
            assert await _count(stack, ExamVendorItem, ExamVendorItem.code == "V-NEW2") == 0

        async def applied() -> ExamVendorItem | None:
            async with stack.api.sessions() as session:
                return await session.get(ExamVendorItem, "V-NEW2")

        item = await eventually(applied, within=60, what="the kept change, retried")
    assert item.name == "同型半胱氨酸"


async def test_a_booking_whose_answer_was_lost_is_booked_once(exam_stack: ExamStack) -> None:
    stack = exam_stack
    zhang = await _bound(stack)
    day = datetime.now(UTC).astimezone(stack.api.settings.tz).date() + timedelta(days=5)
    # The vendor books, then its answer never arrives (our client gives up after 2 s); then
    # it is down for a while. The retries send the same booking id.
    plan = FaultPlan(
        hang_seconds=5,
        rules=[
            FaultRule(path_prefix="/api/us-k2", hang_after_commit=True, count=1),
            FaultRule(path_prefix="/api/us-k2", status=503, count=1),
        ],
    )
    await stack.sim.put("/sim/faults", json=plan.model_dump())
    async with running_worker(
        stack.api.temporal, stack.api.settings.temporal_task_queue, stack.api.settings,
        stack.api.sessions,
    ):  # fmt: skip
        asked = await stack.api.http.post(
            "/api/exams/bookings",
            json={"his_patient_id": zhang.his_patient_id, "exam_date": day.isoformat()},
            headers=stack.auth(),
        )
        assert asked.status_code == 201, asked.text
        booking_id = asked.json()["id"]
        reviewed = await stack.api.http.post(
            f"/api/exams/bookings/{booking_id}/review", json={}, headers=stack.auth("doctor")
        )
        assert reviewed.status_code == 200, reviewed.text

        async def booked() -> dict[str, Any] | None:
            row = await stack.api.http.get(
                f"/api/exams/bookings/{booking_id}", headers=stack.auth()
            )
            body: dict[str, Any] = row.json()
            return body if body["status"] == "booked" else None

        booking = await eventually(booked, within=60, what="the booking, after the retries")
    vendor_bookings = (await stack.sim.get("/sim/bookings")).json()
    assert len(vendor_bookings) == 1
    assert vendor_bookings[0]["exam_no"] == booking["exam_no"]
    faults = (await stack.sim.get("/sim/faults")).json()
    assert faults["rule"] == 2
