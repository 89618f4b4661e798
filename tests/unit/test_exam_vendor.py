"""The exam vendor's interfaces end to end without a network: our client (integrations/exam.py)
against the vendor simulator, and the simulator's signed pushes against a fake platform."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI, Request

from core.webhook_auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_webhook
from integrations.exam import ExamClient, ExamRefused, ExamUnavailable
from integrations.exam_protocol import (
    BindRequest,
    BookRequest,
    Customer,
    ExamItem,
    GuidePush,
    ReportPush,
    ResultsPush,
)
from simulators.exam.app import ExamVendorState, create_app

API_KEY = "exam-key"
SECRET = "exam-secret"
VENDOR = "http://exam.test"
PLATFORM = "http://platform.test"
EXAM_DATE = "20300115"

ZHANG = BindRequest(name="张建国", sex="1", birth_date="19560312", id_number="110101195603120011")
ZHANG_CUSTOMER = Customer(name="张建国", sex="1", birth_date="19560312")
WANG = BindRequest(name="王晓明", sex="1", birth_date="19700101", id_number="110101197001010033")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Vendor:
    app: FastAPI
    state: ExamVendorState
    client: ExamClient
    sim: httpx.AsyncClient
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    to_platform: httpx.AsyncClient | None = None

    async def close(self) -> None:
        await self.client.close()
        await self.sim.aclose()
        if self.to_platform is not None:
            await self.to_platform.aclose()


def fake_platform(received: list[Received], arrived: asyncio.Event) -> FastAPI:
    platform = FastAPI()

    @platform.post("/integrations/exam/{interface}/{kind}")
    async def receive(request: Request) -> dict[str, str]:
        received.append(Received(request.url.path, dict(request.headers), await request.body()))
        arrived.set()
        return {"code": "0", "level": "成功", "message": "成功。"}

    return platform


async def open_vendor(auto_push_seconds: float | None = None) -> Vendor:
    received: list[Received] = []
    arrived = asyncio.Event()
    platform = fake_platform(received, arrived)
    to_platform = httpx.AsyncClient(transport=httpx.ASGITransport(app=platform))
    state = ExamVendorState.seeded()
    app = create_app(
        platform_url=PLATFORM,
        api_key=API_KEY,
        secret=SECRET,
        state=state,
        auto_push_seconds=auto_push_seconds,
        http=to_platform,
    )
    transport = httpx.ASGITransport(app=app)
    return Vendor(
        app=app,
        state=state,
        client=ExamClient(httpx.AsyncClient(transport=transport), VENDOR, API_KEY),
        sim=httpx.AsyncClient(transport=transport, base_url=VENDOR),
        received=received,
        arrived=arrived,
        to_platform=to_platform,
    )


@pytest.fixture
async def vendor() -> AsyncIterator[Vendor]:
    opened = await open_vendor()
    yield opened
    await opened.close()


def booking(booking_id: str = "BK-1", exam_date: str = EXAM_DATE) -> BookRequest:
    return BookRequest(
        booking_id=booking_id,
        account_no="TJ000101",
        customer=ZHANG_CUSTOMER,
        exam_date=exam_date,
        items=[
            ExamItem(code="V-GLU", name="空腹血糖"),
            # The platform's code: the vendor knows the item by its name.
            ExamItem(code="HBA1C", name="糖化血红蛋白"),
            ExamItem(code="V-C13", name="碳13呼气试验"),
        ],
    )


def verified(received: Received) -> None:
    verify_webhook(
        secret=SECRET,
        timestamp=received.headers.get(TIMESTAMP_HEADER.lower()),
        signature=received.headers.get(SIGNATURE_HEADER.lower()),
        body=received.body,
        now=time.time(),
        tolerance_seconds=300,
    )


# ---- US-K1 -----------------------------------------------------------------------------------


async def test_bind_finds_a_known_account(vendor: Vendor) -> None:
    answer = await vendor.client.bind(ZHANG)
    assert (answer.code, answer.account_no) == ("0", "TJ000101")


async def test_bind_opens_an_account_when_none_is_found(vendor: Vendor) -> None:
    first = await vendor.client.bind(WANG)
    assert (first.code, first.account_no) == ("103", "TJ000103")
    assert first.message == "姓名、性别、出生日期、身份证号，查无账号"
    again = await vendor.client.bind(WANG)
    assert (again.code, again.account_no) == ("0", "TJ000103")
    accounts = (await vendor.sim.get("/sim/accounts")).json()
    assert [a["account_no"] for a in accounts] == ["TJ000101", "TJ000102", "TJ000103"]


async def test_a_name_that_does_not_go_with_the_id_number_finds_nothing(vendor: Vendor) -> None:
    answer = await vendor.client.bind(ZHANG.model_copy(update={"name": "张建军"}))
    assert answer.code == "103"
    assert answer.account_no != "TJ000101"


async def test_a_wrong_api_key_is_refused(vendor: Vendor) -> None:
    transport = httpx.ASGITransport(app=vendor.app)
    stranger = ExamClient(httpx.AsyncClient(transport=transport), VENDOR, "not-the-key")
    with pytest.raises(ExamRefused, match="401"):
        await stranger.bind(ZHANG)
    await stranger.close()


# ---- US-K2 -----------------------------------------------------------------------------------


async def test_book_gives_a_booking_and_an_exam_number(vendor: Vendor) -> None:
    answer = await vendor.client.book(booking())
    assert answer.code == "0"
    assert (answer.vendor_booking_no or "").startswith("YY")
    [kept] = (await vendor.sim.get("/sim/bookings")).json()
    assert kept["vendor_booking_no"] == answer.vendor_booking_no
    assert kept["exam_no"] == answer.exam_no == f"TJ{EXAM_DATE}0001"
    assert kept["idempotency_key"] == "BK-1"


async def test_the_same_booking_twice_is_one_booking(vendor: Vendor) -> None:
    first = await vendor.client.book(booking())
    second = await vendor.client.book(booking())
    assert (second.vendor_booking_no, second.exam_no) == (first.vendor_booking_no, first.exam_no)
    assert len((await vendor.sim.get("/sim/bookings")).json()) == 1


async def test_a_full_day_is_refused_with_202(vendor: Vendor) -> None:
    assert (await vendor.sim.put("/sim/full-dates", json=[EXAM_DATE])).status_code == 200
    answer = await vendor.client.book(booking())
    assert (answer.code, answer.message, answer.vendor_booking_no) == (
        "202",
        "当日体检名额已满",
        None,
    )
    # The refusal is not kept: the same booking may ask for another day.
    other_day = await vendor.client.book(booking(exam_date="20300116"))
    assert other_day.code == "0"


async def test_an_unknown_account_is_refused(vendor: Vendor) -> None:
    request = booking().model_copy(update={"account_no": "TJ999999"})
    with pytest.raises(ExamRefused, match="404"):
        await vendor.client.book(request)


async def test_an_injected_503_is_worth_retrying_and_spares_sim(vendor: Vendor) -> None:
    plan = {"rules": [{"path_prefix": "/api/us-k2", "status": 503, "count": 1}]}
    assert (await vendor.sim.put("/sim/faults", json=plan)).status_code == 200
    with pytest.raises(ExamUnavailable, match="503"):
        await vendor.client.book(booking())
    assert (await vendor.sim.get("/sim/bookings")).json() == []
    assert (await vendor.client.book(booking())).code == "0"


async def test_network_errors_and_foreign_answers() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    down = ExamClient(httpx.AsyncClient(transport=httpx.MockTransport(broken)), VENDOR, API_KEY)
    with pytest.raises(ExamUnavailable, match="ConnectError"):
        await down.bind(ZHANG)

    def odd(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": "9", "account_no": "TJ1"})

    strange = ExamClient(httpx.AsyncClient(transport=httpx.MockTransport(odd)), VENDOR, API_KEY)
    with pytest.raises(ExamRefused, match="code"):
        await strange.bind(ZHANG)


# ---- pushes ----------------------------------------------------------------------------------


async def test_a_guide_push_is_signed_and_repeated_identically(vendor: Vendor) -> None:
    await vendor.client.book(booking())
    exam_no = f"TJ{EXAM_DATE}0001"
    response = await vendor.sim.post("/sim/push/guide", json={"exam_no": exam_no, "times": 2})
    outcome = response.json()
    assert [a["status_code"] for a in outcome["answers"]] == [200, 200]
    assert outcome["answers"][0]["response"]["code"] == "0"
    assert (outcome["status_code"], outcome["response"]["code"]) == (200, "0")

    first, second = vendor.received
    assert first.path == second.path == "/integrations/exam/us-h2/guide"
    assert first.body == second.body
    for delivery in (first, second):
        verified(delivery)
    guide = GuidePush.model_validate_json(first.body)
    assert guide.message_id == outcome["message_id"]
    assert (guide.exam_no, guide.account_no, guide.customer) == (
        exam_no,
        "TJ000101",
        ZHANG_CUSTOMER,
    )
    assert all(words in guide.guide for words in ("空腹", "身份证", "空腹血糖"))
    # Chinese travels as itself, not as \u escapes.
    assert "空腹".encode() in first.body
    pushes = (await vendor.sim.get("/sim/pushes")).json()
    assert [p["message_id"] for p in pushes] == [guide.message_id] * 2


async def test_each_push_has_its_own_message_id(vendor: Vendor) -> None:
    await vendor.client.book(booking())
    for _ in range(2):
        await vendor.sim.post("/sim/push/guide", json={"booking_id": "BK-1"})
    ids = {GuidePush.model_validate_json(r.body).message_id for r in vendor.received}
    assert len(ids) == 2


async def test_results_cover_the_booked_items_and_one_unknown(vendor: Vendor) -> None:
    await vendor.client.book(booking())
    response = await vendor.sim.post("/sim/push/results", json={"exam_no": f"TJ{EXAM_DATE}0001"})
    assert response.status_code == 200
    [delivery] = vendor.received
    verified(delivery)
    results = ResultsPush.model_validate_json(delivery.body)
    assert results.change_type == 1
    by_code = {r.item_code: r for r in results.results}
    assert set(by_code) == {"V-GLU", "V-HBA1C", "V-C13", "V-XYZ"}
    assert (by_code["V-GLU"].value, by_code["V-GLU"].abnormal_flag) == ("7.8", "H")
    assert by_code["V-XYZ"].item_name == "骨密度检测"


async def test_a_push_for_an_exam_the_vendor_does_not_know(vendor: Vendor) -> None:
    customer = {"name": "赵四", "sex": "2", "birth_date": "19800202"}
    half = await vendor.sim.post("/sim/push/report", json={"exam_no": "TJX1"})
    assert half.status_code == 404
    nobody = await vendor.sim.post("/sim/push/report", json={"times": 1})
    assert nobody.status_code == 422
    bad_date = {**customer, "birth_date": "19801302"}
    invalid = await vendor.sim.post(
        "/sim/push/report",
        json={"exam_no": "TJX1", "account_no": "TJ555555", "customer": bad_date},
    )
    assert invalid.status_code == 422
    assert vendor.received == []
    response = await vendor.sim.post(
        "/sim/push/report",
        json={"exam_no": "TJX1", "account_no": "TJ555555", "customer": customer},
    )
    assert response.status_code == 200
    report = ReportPush.model_validate_json(vendor.received[0].body)
    assert (report.exam_no, report.account_no, report.customer.name) == ("TJX1", "TJ555555", "赵四")
    assert "总检结论" in report.report


async def test_overrides_change_only_what_they_name(vendor: Vendor) -> None:
    await vendor.client.book(booking())
    await vendor.sim.post(
        "/sim/push/guide",
        json={"booking_id": "BK-1", "customer": {"name": "张健国"}, "guide": "请空腹。"},
    )
    guide = GuidePush.model_validate_json(vendor.received[0].body)
    assert (guide.customer.name, guide.customer.birth_date, guide.guide) == (
        "张健国",
        "19560312",
        "请空腹。",
    )


async def test_a_dictionary_push_changes_the_vendor_dictionary(vendor: Vendor) -> None:
    item = {"code": "V-CEA", "name": "癌胚抗原", "category_code": "LAB", "category_name": "检验"}
    response = await vendor.sim.post("/sim/push/dictionary", json={"items": [item]})
    assert response.status_code == 200
    assert json.loads(vendor.received[0].body)["items"] == [{**item, "unit": None}]
    codes = [entry["code"] for entry in (await vendor.sim.get("/sim/dictionary")).json()]
    assert codes.count("V-CEA") == 1
    assert len(codes) == 14


async def test_a_new_booking_pushes_guide_results_and_report_by_itself() -> None:
    opened = await open_vendor(auto_push_seconds=0.01)
    await opened.client.book(booking())
    await opened.client.book(booking())  # the same booking: no second round of pushes
    async with asyncio.timeout(5):
        while len(opened.received) < 3:
            await opened.arrived.wait()
            opened.arrived.clear()
    await asyncio.sleep(0.1)  # room for a wrong fourth push to show
    paths = [r.path.rsplit("/", 1)[-1] for r in opened.received]
    assert paths == ["guide", "results", "report"]
    for delivery in opened.received:
        verified(delivery)
    report = ReportPush.model_validate_json(opened.received[2].body)
    assert any("空腹血糖升高" in line for line in report.conclusions)
    await opened.close()
