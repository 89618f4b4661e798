"""A physical-exam vendor simulator (体检机构, PX, seed 003).

It answers the interfaces we call, under /api with our API key: US-K1 binds a person to an exam
account (creating one when none is found, code 103) and US-K2 books an exam (idempotent by our
booking id; code 202 on a full day). It pushes to the platform's /integrations/exam/ what the
vendor sends us, signed with the shared secret (core/webhook_auth.py): US-H2 guides, US-H3
results, US-H4 reports and US-H5 item dictionaries.

Pushes go when asked through /sim (tests, people) or, with ``auto_push_seconds``, by themselves
after each new booking: guide, results, report, that many seconds apart (``make run``). Faults
(simulators/faults.py, ``PUT /sim/faults``) apply to /api only, never to /sim.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, TypeVar

import httpx
from fastapi import APIRouter, Body, Depends, FastAPI, Header, HTTPException, status
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from core.validation import Line, Text
from core.webhook_auth import signed_headers
from exams.codes import SUCCESS, reply
from integrations.exam_protocol import (
    BindAnswer,
    BindRequest,
    BookAnswer,
    BookRequest,
    ChangeType,
    CompactDate,
    Customer,
    DictionaryItem,
    DictionaryPush,
    ExamItem,
    ExamListQuery,
    GuidePush,
    ReportPush,
    ResultItem,
    ResultsPush,
    Sex,
    VendorId,
    compact,
    parse_compact,
)
from simulators.faults import FaultInjector, add_fault_control, install

PUSH_PREFIX = "/integrations/exam"
EXAM_LIST_PATH = "/us-h1/exam-list"
GUIDE_PATH = "/us-h2/guide"
RESULTS_PATH = "/us-h3/results"
REPORT_PATH = "/us-h4/report"
DICTIONARY_PATH = "/us-h5/items"

# US-K1's 103 names the parameters that found nothing, never their values.
BIND_PARAMS = "、".join(("姓名", "性别", "出生日期", "身份证号"))
FULL_DAY = "当日体检名额已满"
ACCOUNT_PREFIX = "TJ"
MAX_REPEATS = 10

Flag = Literal["N", "H", "L", "A"]
Push = GuidePush | ResultsPush | ReportPush | DictionaryPush
_Model = TypeVar("_Model", bound=BaseModel)


# ---- the vendor's data -----------------------------------------------------------------------


class _Person(BaseModel):
    name: Annotated[Line, Field(min_length=1, max_length=50)]
    sex: Sex
    birth_date: CompactDate
    id_number: Annotated[Line, Field(min_length=15, max_length=18)]


class Account(_Person):
    account_no: VendorId


class NewAccount(_Person):
    """``POST /sim/accounts``: without an account number the next free one is given."""

    account_no: VendorId | None = None


class Booking(BaseModel):
    booking_id: str
    account_no: str
    customer: Customer
    exam_date: str
    items: list[ExamItem]
    idempotency_key: str | None
    vendor_booking_no: str
    exam_no: str
    answer: BookAnswer


@dataclass(frozen=True)
class VendorItem:
    """An entry of the vendor's item dictionary, with the result the simulator reports for it."""

    code: str
    name: str
    category_code: str
    category_name: str
    unit: str | None = None
    reference_range: str | None = None
    value: str = "未见异常"
    flag: Flag = "N"
    # What the report concludes when the value is abnormal.
    conclusion: str | None = None

    def entry(self) -> DictionaryItem:
        return DictionaryItem(
            code=self.code,
            name=self.name,
            category_code=self.category_code,
            category_name=self.category_name,
            unit=self.unit,
        )

    def result(self, *, deleted: bool = False) -> ResultItem:
        return ResultItem(
            item_code=self.code,
            item_name=self.name,
            value="" if deleted else self.value,
            unit=self.unit,
            reference_range=self.reference_range,
            abnormal_flag=None if deleted else self.flag,
        )


_LAB, _GENERAL, _FUNCTION, _IMAGING = (
    ("LAB", "检验"),
    ("GEN", "一般检查"),
    ("FUN", "功能检查"),
    ("IMG", "影像检查"),
)

SEED_ITEMS: tuple[VendorItem, ...] = (
    VendorItem("V-GLU", "空腹血糖", *_LAB, "mmol/L", "3.9-6.1", "7.8", "H",
               "空腹血糖升高（7.8 mmol/L），建议复查并到内分泌科就诊"),
    VendorItem("V-TC", "总胆固醇", *_LAB, "mmol/L", "<5.2", "5.9", "H",
               "总胆固醇偏高，建议低脂饮食，3个月后复查血脂"),
    VendorItem("V-TG", "甘油三酯", *_LAB, "mmol/L", "<1.7", "1.4"),
    VendorItem("V-LDL", "低密度脂蛋白胆固醇", *_LAB, "mmol/L", "<3.4", "3.8", "H",
               "低密度脂蛋白胆固醇偏高，建议心内科评估"),
    VendorItem("V-ALT", "谷丙转氨酶", *_LAB, "U/L", "9-40", "28"),
    VendorItem("V-CR", "肌酐", *_LAB, "umol/L", "44-133", "76"),
    VendorItem("V-SBP", "收缩压", *_GENERAL, "mmHg", "90-139", "148", "H",
               "血压偏高（148/86 mmHg），建议非同日复测血压"),
    VendorItem("V-DBP", "舒张压", *_GENERAL, "mmHg", "60-89", "86"),
    VendorItem("V-BMI", "体重指数", *_GENERAL, "kg/m2", "18.5-23.9", "26.3", "H",
               "超重（BMI 26.3），建议控制饮食、规律运动"),
    VendorItem("V-HBA1C", "糖化血红蛋白", *_LAB, "%", "4.0-6.4", "6.9", "H",
               "糖化血红蛋白升高，结合空腹血糖考虑糖尿病可能"),
    VendorItem("V-ECG", "心电图", *_FUNCTION, None, None, "窦性心律，大致正常心电图"),
    VendorItem("V-US-ABD", "腹部超声", *_IMAGING, None, None, "轻度脂肪肝", "A",
               "轻度脂肪肝，建议清淡饮食，半年后复查腹部超声"),
    VendorItem("V-C13", "碳13呼气试验", *_LAB, None, "阴性", "阳性", "A",
               "幽门螺杆菌阳性，建议消化内科就诊"),
)  # fmt: skip

# Reported with every exam but in no dictionary: an item the platform cannot match, so it holds
# the result for a person to look at.
EXTRA_ITEM = VendorItem(
    "V-XYZ", "骨密度检测", *_IMAGING, "T值", ">=-1.0", "-1.8", "L",
    "骨量减少，建议补充钙剂及维生素D",
)  # fmt: skip

SEED_ACCOUNTS: tuple[Account, ...] = (
    Account(account_no="TJ000101", name="张建国", sex="1", birth_date="19560312",
            id_number="110101195603120011"),
    Account(account_no="TJ000102", name="李秀英", sex="2", birth_date="19620718",
            id_number="110101196207180022"),
)  # fmt: skip


class Answer(BaseModel):
    """What the platform answered one delivery; no status when it could not be reached."""

    status_code: int | None
    response: Any = None
    error: str | None = None


class Delivery(Answer):
    path: str
    message_id: str
    body: dict[str, Any]
    at: datetime


class PushOutcome(BaseModel):
    """A /sim push trigger's answer: the body sent ``times`` times, each answer, and the last
    answer's status and body at the top for the common single push."""

    path: str
    message_id: str
    body: dict[str, Any]
    answers: list[Answer]
    status_code: int | None
    response: Any = None


@dataclass
class ExamVendorState:
    accounts: dict[str, Account] = field(default_factory=dict)  # by account_no
    bookings: dict[str, Booking] = field(default_factory=dict)  # by our booking_id
    exam_numbers: dict[str, str] = field(default_factory=dict)  # exam_no -> booking_id
    dictionary: dict[str, VendorItem] = field(default_factory=dict)  # by vendor code
    full_dates: set[str] = field(default_factory=set)  # YYYYMMDD on which booking is refused
    pushes: list[Delivery] = field(default_factory=list)
    faults: FaultInjector = field(default_factory=lambda: FaultInjector(scope_prefix="/api"))

    @classmethod
    def seeded(cls) -> ExamVendorState:
        return cls(
            accounts={account.account_no: account for account in SEED_ACCOUNTS},
            dictionary={item.code: item for item in SEED_ITEMS},
        )

    def find_account(self, request: BindRequest) -> Account | None:
        # A name that does not go with the identity number finds nothing, as at the vendor.
        return next(
            (
                account
                for account in self.accounts.values()
                if account.id_number == request.id_number and account.name == request.name
            ),
            None,
        )

    def next_account_no(self) -> str:
        numbers = [
            int(no[len(ACCOUNT_PREFIX) :])
            for no in self.accounts
            if no.startswith(ACCOUNT_PREFIX) and no[len(ACCOUNT_PREFIX) :].isdigit()
        ]
        return f"{ACCOUNT_PREFIX}{max(numbers, default=100) + 1:06d}"

    def open_account(self, person: _Person, account_no: str | None = None) -> Account:
        fields = person.model_dump(include=set(_Person.model_fields))
        account = Account(account_no=account_no or self.next_account_no(), **fields)
        self.accounts[account.account_no] = account
        return account

    def book(self, request: BookRequest, idempotency_key: str | None) -> Booking:
        same_day = sum(1 for b in self.bookings.values() if b.exam_date == request.exam_date)
        vendor_booking_no = f"YY{len(self.bookings) + 1:08d}"
        exam_no = f"TJ{request.exam_date}{same_day + 1:04d}"
        booking = Booking(
            booking_id=request.booking_id,
            account_no=request.account_no,
            customer=request.customer,
            exam_date=request.exam_date,
            items=request.items,
            idempotency_key=idempotency_key,
            vendor_booking_no=vendor_booking_no,
            exam_no=exam_no,
            answer=BookAnswer(
                code=SUCCESS,
                message=reply(SUCCESS).message,
                vendor_booking_no=vendor_booking_no,
                exam_no=exam_no,
            ),
        )
        self.bookings[booking.booking_id] = booking
        self.exam_numbers[booking.exam_no] = booking.booking_id
        return booking

    def by_exam_no(self, exam_no: str) -> Booking | None:
        booking_id = self.exam_numbers.get(exam_no)
        return None if booking_id is None else self.bookings.get(booking_id)

    def change_dictionary(self, change_type: ChangeType, items: list[DictionaryItem]) -> None:
        for item in items:
            if change_type == 3:
                self.dictionary.pop(item.code, None)
                continue
            known = self.dictionary.get(item.code) or VendorItem(
                item.code, item.name, item.category_code, item.category_name
            )
            # The vendor's sample result stays; what the dictionary says of the item changes.
            self.dictionary[item.code] = replace(
                known,
                name=item.name,
                category_code=item.category_code,
                category_name=item.category_name,
                unit=item.unit,
            )


# ---- what the vendor writes ------------------------------------------------------------------


def matched_items(dictionary: dict[str, VendorItem], items: list[ExamItem]) -> list[VendorItem]:
    """The dictionary entries of the booked items: by the vendor's code, else by name (a booking
    carries the platform's code for an item the vendor's code is not known for)."""
    by_name = {item.name: item for item in dictionary.values()}
    found: dict[str, VendorItem] = {}
    for item in items:
        entry = dictionary.get(item.code) or by_name.get(item.name)
        if entry is not None:
            found.setdefault(entry.code, entry)
    return list(found.values())


def generated_results(entries: list[VendorItem], *, deleted: bool = False) -> list[ResultItem]:
    return [entry.result(deleted=deleted) for entry in (*entries, EXTRA_ITEM)]


def _chinese_date(exam_date: str) -> str:
    day = parse_compact(exam_date)
    return f"{day.year}年{day.month}月{day.day}日"


def guide_text(exam_date: str, items: list[ExamItem]) -> str:
    lines = [
        f"尊敬的客户：您已预约{_chinese_date(exam_date)}的健康体检。",
        "1. 体检当日请空腹（前一日晚10点后禁食，可少量饮水），"
        "上午7:30至9:30到体检中心一楼前台报到。",
        "2. 请携带身份证，穿着宽松、无金属饰物的衣物。",
        "3. 体检前三天请清淡饮食，勿饮酒，避免剧烈运动。",
    ]
    if any("碳13" in item.name or "呼气" in item.name for item in items):
        lines.append("4. 碳13呼气试验前一个月内请勿服用抗生素及胃药。")
    if items:
        lines.append("本次体检项目：" + "、".join(item.name for item in items) + "。")
    lines.append("如需改期，请至少提前一天致电体检中心。")
    return "\n".join(lines)


def conclusions_for(results: list[ResultItem], dictionary: dict[str, VendorItem]) -> list[str]:
    entries = {**dictionary, EXTRA_ITEM.code: EXTRA_ITEM}
    lines = []
    for result in results:
        if result.abnormal_flag in (None, "N"):
            continue
        entry = entries.get(result.item_code)
        lines.append(
            entry.conclusion
            if entry is not None and entry.conclusion
            else f"{result.item_name}异常（{result.value}），建议专科随访"
        )
    return lines or ["本次体检未见明显异常，建议每年定期体检"]


def report_html(
    exam_no: str, exam_date: str, results: list[ResultItem], conclusions: list[str]
) -> str:
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(cell or '')}</td>"
            for cell in (r.item_name, r.value, r.unit, r.reference_range, r.abnormal_flag)
        )
        + "</tr>"
        for r in results
    )
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in conclusions)
    return (
        "<html><body><h1>健康体检报告</h1>"
        f"<p>体检号：{html.escape(exam_no)}　体检日期：{_chinese_date(exam_date)}</p>"
        "<h2>检查结果</h2><table><tr><th>项目</th><th>结果</th><th>单位</th><th>参考范围</th>"
        f"<th>提示</th></tr>{rows}</table>"
        f"<h2>总检结论</h2><ol>{summary}</ol>"
        "<p>主检医师：王立明</p></body></html>"
    )


def _message_id() -> str:
    return uuid.uuid4().hex


def _checked(model: type[_Model], **fields: Any) -> _Model:
    """A push body, or a 422 for the /sim caller saying which field would not be valid."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = [
            {"loc": list(error["loc"]), "msg": error["msg"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problems) from exc


# ---- /sim requests ---------------------------------------------------------------------------


class CustomerFields(BaseModel):
    name: str | None = None
    sex: str | None = None
    birth_date: str | None = None


class PushTarget(BaseModel):
    """Whose exam a push is about: a booking (by exam number or our booking id), with any field
    overridden; an exam number the simulator does not know needs account_no and customer."""

    exam_no: VendorId | None = None
    booking_id: VendorId | None = None
    account_no: VendorId | None = None
    customer: CustomerFields | None = None
    times: int = Field(default=1, ge=1, le=MAX_REPEATS)


class GuideTrigger(PushTarget):
    exam_date: CompactDate | None = None
    guide: Text | None = Field(default=None, max_length=20_000)


class ResultsTrigger(PushTarget):
    change_type: ChangeType = 1
    items: list[ResultItem] | None = None  # default: the booking's, generated
    changed_at: AwareDatetime | None = None  # default: now


class ReportTrigger(PushTarget):
    report: Text | None = Field(default=None, max_length=200_000)
    conclusions: list[str] | None = None


class DictionaryTrigger(BaseModel):
    change_type: ChangeType = 1
    items: list[DictionaryItem] | None = None  # default: the whole dictionary
    times: int = Field(default=1, ge=1, le=MAX_REPEATS)


@dataclass(frozen=True)
class Subject:
    """The exam a push is about."""

    account_no: str
    exam_no: str
    customer: Customer
    booking: Booking | None


def _error(http_status: int, code: str, message: str) -> HTTPException:
    return HTTPException(http_status, {"code": code, "message": message})


def subject_of(state: ExamVendorState, target: PushTarget) -> Subject:
    if target.booking_id is not None:
        booking = state.bookings.get(target.booking_id)
        if booking is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no booking with this booking_id")
    elif target.exam_no is not None:
        booking = state.by_exam_no(target.exam_no)
    else:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give exam_no or booking_id")
    overrides = target.customer.model_dump(exclude_none=True) if target.customer else {}
    if booking is None:
        if target.account_no is None or len(overrides) < len(CustomerFields.model_fields):
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                "unknown exam_no: give account_no and the whole customer to push for it",
            )
        base: dict[str, Any] = {}
    else:
        base = booking.customer.model_dump()
    exam_no = target.exam_no or (booking.exam_no if booking else "")
    account_no = target.account_no or (booking.account_no if booking else "")
    customer = _checked(Customer, **{**base, **overrides})
    return Subject(account_no=account_no, exam_no=exam_no, customer=customer, booking=booking)


# ---- the app ---------------------------------------------------------------------------------


def create_app(
    *,
    platform_url: str,
    api_key: str,
    secret: str,
    state: ExamVendorState | None = None,
    auto_push_seconds: float | None = None,
    http: httpx.AsyncClient | None = None,
) -> FastAPI:
    """``http``: the client pushes go through (tests bind one to a fake platform); the app makes
    and closes its own without it."""
    vendor = state or ExamVendorState.seeded()
    client = http or httpx.AsyncClient(timeout=httpx.Timeout(10.0))
    tasks: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for task in list(tasks):
            task.cancel()
        vendor.faults.release()
        if http is None:
            await client.aclose()

    app = FastAPI(title="Physical-exam vendor simulator (体检机构)", lifespan=lifespan)
    app.state.exam = vendor
    install(app, vendor.faults)

    async def require_api_key(x_api_key: str | None = Header(default=None)) -> None:
        if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), api_key.encode()):
            raise _error(status.HTTP_401_UNAUTHORIZED, "UNAUTHORIZED", "API Key 无效")

    api = APIRouter(prefix="/api", dependencies=[Depends(require_api_key)])

    @api.post("/us-k1/bind")
    async def bind(request: BindRequest) -> BindAnswer:
        account = vendor.find_account(request)
        if account is not None:
            return BindAnswer(
                code=SUCCESS, message=reply(SUCCESS).message, account_no=account.account_no
            )
        account = vendor.open_account(_Person.model_validate(request.model_dump()))
        return BindAnswer(
            code="103",
            message=reply("103", params=BIND_PARAMS).message,
            account_no=account.account_no,
        )

    @api.post("/us-k2/book")
    async def book(
        request: BookRequest, idempotency_key: str | None = Header(default=None)
    ) -> BookAnswer:
        if idempotency_key is not None and idempotency_key != request.booking_id:
            raise _error(
                status.HTTP_400_BAD_REQUEST, "KEY_MISMATCH", "Idempotency-Key 与 booking_id 不一致"
            )
        known = vendor.bookings.get(request.booking_id)
        if known is not None:
            return known.answer
        if request.account_no not in vendor.accounts:
            raise _error(status.HTTP_404_NOT_FOUND, "ACCOUNT_NOT_FOUND", "账号不存在")
        try:
            parse_compact(request.exam_date)
        except ValueError as exc:
            raise _error(status.HTTP_422_UNPROCESSABLE_CONTENT, "BAD_DATE", "体检日期无效") from exc
        if request.exam_date in vendor.full_dates:
            # Not kept: the same booking may ask again for another day.
            return BookAnswer(code="202", message=FULL_DAY)
        booking = vendor.book(request, idempotency_key)
        if auto_push_seconds:
            _start(auto_push(booking, auto_push_seconds))
        return booking.answer

    def _start(work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def post(path: str, body: bytes) -> Answer:
        try:
            response = await client.post(
                f"{platform_url.rstrip('/')}{PUSH_PREFIX}{path}",
                content=body,
                headers=signed_headers(secret, body),
            )
        except httpx.HTTPError as exc:
            return Answer(status_code=None, error=exc.__class__.__name__)
        try:
            answer: Any = response.json()
        except ValueError:
            answer = response.text[:2000]
        return Answer(status_code=response.status_code, response=answer)

    async def deliver(path: str, payload: Push, times: int = 1) -> PushOutcome:
        # One body, signed afresh each time: a repeat is the very same message.
        data = payload.model_dump(mode="json")
        body = json.dumps(data, ensure_ascii=False).encode()
        answers = []
        for _ in range(times):
            answer = await post(path, body)
            answers.append(answer)
            vendor.pushes.append(
                Delivery(
                    path=path,
                    message_id=payload.message_id,
                    body=data,
                    at=datetime.now(UTC),
                    **answer.model_dump(),
                )
            )
        return PushOutcome(
            path=path,
            message_id=payload.message_id,
            body=data,
            answers=answers,
            status_code=answers[-1].status_code,
            response=answers[-1].response,
        )

    async def send_guide(
        subject: Subject, *, exam_date: str | None = None, guide: str | None = None, times: int = 1
    ) -> PushOutcome:
        booking = subject.booking
        day = exam_date or (booking.exam_date if booking else compact(date.today()))
        payload = _checked(
            GuidePush,
            message_id=_message_id(),
            account_no=subject.account_no,
            exam_no=subject.exam_no,
            customer=subject.customer,
            exam_date=day,
            guide=guide or guide_text(day, booking.items if booking else []),
        )
        return await deliver(GUIDE_PATH, payload, times)

    def default_results(subject: Subject, *, deleted: bool = False) -> list[ResultItem]:
        booking = subject.booking
        entries = (
            matched_items(vendor.dictionary, booking.items)
            if booking
            else list(vendor.dictionary.values())
        )
        return generated_results(entries, deleted=deleted)

    async def send_results(
        subject: Subject,
        *,
        change_type: ChangeType = 1,
        items: list[ResultItem] | None = None,
        changed_at: datetime | None = None,
        times: int = 1,
    ) -> PushOutcome:
        payload = _checked(
            ResultsPush,
            message_id=_message_id(),
            account_no=subject.account_no,
            exam_no=subject.exam_no,
            customer=subject.customer,
            change_type=change_type,
            changed_at=changed_at or datetime.now(UTC),
            results=default_results(subject, deleted=change_type == 3) if items is None else items,
        )
        return await deliver(RESULTS_PATH, payload, times)

    async def send_report(
        subject: Subject,
        *,
        report: str | None = None,
        conclusions: list[str] | None = None,
        times: int = 1,
    ) -> PushOutcome:
        if report is None:
            results = default_results(subject)
            conclusions = (
                conclusions
                if conclusions is not None
                else conclusions_for(results, vendor.dictionary)
            )
            exam_date = subject.booking.exam_date if subject.booking else compact(date.today())
            report = report_html(subject.exam_no, exam_date, results, conclusions)
        payload = _checked(
            ReportPush,
            message_id=_message_id(),
            account_no=subject.account_no,
            exam_no=subject.exam_no,
            customer=subject.customer,
            report=report,
            conclusions=conclusions or [],
        )
        return await deliver(REPORT_PATH, payload, times)

    async def auto_push(booking: Booking, delay: float) -> None:
        subject = Subject(booking.account_no, booking.exam_no, booking.customer, booking)
        steps: tuple[Callable[[Subject], Awaitable[PushOutcome]], ...] = (
            send_guide,
            send_results,
            send_report,
        )
        for send in steps:
            await asyncio.sleep(delay)
            # A push the simulator cannot build ends the sequence; /sim can still push by hand.
            with contextlib.suppress(HTTPException):
                await send(subject)

    control = APIRouter(prefix="/sim", tags=["simulation control"])

    @control.get("/accounts")
    async def accounts() -> list[Account]:
        return list(vendor.accounts.values())

    @control.post("/accounts", status_code=status.HTTP_201_CREATED)
    async def add_account(request: NewAccount) -> Account:
        if request.account_no is not None and request.account_no in vendor.accounts:
            raise HTTPException(status.HTTP_409_CONFLICT, "account_no taken")
        return vendor.open_account(request, request.account_no)

    @control.get("/bookings")
    async def bookings() -> list[Booking]:
        return list(vendor.bookings.values())

    @control.get("/full-dates")
    async def full_dates() -> list[str]:
        return sorted(vendor.full_dates)

    @control.put("/full-dates")
    async def set_full_dates(dates: Annotated[list[CompactDate], Body()]) -> list[str]:
        vendor.full_dates = set(dates)
        return sorted(vendor.full_dates)

    @control.get("/dictionary")
    async def dictionary() -> list[DictionaryItem]:
        return [entry.entry() for entry in vendor.dictionary.values()]

    @control.get("/pushes")
    async def pushes() -> list[Delivery]:
        return vendor.pushes

    @control.post("/exam-list")
    async def ask_exam_list(query: ExamListQuery) -> Answer:
        """US-H1: the vendor asks the platform for a customer's personalised exam list."""
        body = json.dumps(query.model_dump(mode="json"), ensure_ascii=False).encode()
        return await post(EXAM_LIST_PATH, body)

    @control.post("/push/guide")
    async def push_guide(trigger: GuideTrigger) -> PushOutcome:
        return await send_guide(
            subject_of(vendor, trigger),
            exam_date=trigger.exam_date,
            guide=trigger.guide,
            times=trigger.times,
        )

    @control.post("/push/results")
    async def push_results(trigger: ResultsTrigger) -> PushOutcome:
        return await send_results(
            subject_of(vendor, trigger),
            change_type=trigger.change_type,
            items=trigger.items,
            changed_at=trigger.changed_at,
            times=trigger.times,
        )

    @control.post("/push/report")
    async def push_report(trigger: ReportTrigger) -> PushOutcome:
        return await send_report(
            subject_of(vendor, trigger),
            report=trigger.report,
            conclusions=trigger.conclusions,
            times=trigger.times,
        )

    @control.post("/push/dictionary")
    async def push_dictionary(trigger: DictionaryTrigger) -> PushOutcome:
        if trigger.items is not None:
            vendor.change_dictionary(trigger.change_type, trigger.items)
        items = (
            [entry.entry() for entry in vendor.dictionary.values()]
            if trigger.items is None
            else trigger.items
        )
        payload = _checked(
            DictionaryPush,
            message_id=_message_id(),
            change_type=trigger.change_type,
            items=items,
        )
        return await deliver(DICTIONARY_PATH, payload, trigger.times)

    add_fault_control(control, vendor.faults)

    app.include_router(api)
    app.include_router(control)
    return app
