"""The physical-exam vendor interfaces (seed 003, US-K1..US-H5), as JSON over HTTPS.

Outbound, we call the vendor (``X-Api-Key`` header): US-K1 ``POST /api/us-k1/bind`` and US-K2
``POST /api/us-k2/book``. Inbound, the vendor calls us under ``/integrations/exam/``, each body
signed like the HIS's webhooks (HMAC-SHA256 over ``<timestamp>.<body>``, core/webhook_auth.py):
US-H1 ``/us-h1/exam-list``, US-H2 ``/us-h2/guide``, US-H3 ``/us-h3/results``, US-H4
``/us-h4/report``, US-H5 ``/us-h5/items``. Every answer carries the tender's ``code``, ``level``
and ``message`` (exams/codes.py).

Dates travel as YYYYMMDD, as the tender writes them; sex as GB/T 2261.1 codes ("1" male, "2"
female). Each push carries the vendor's ``message_id``: a push delivered twice is recognised by
it and changes nothing the second time.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from core.validation import Line, Text

# Vendor identifiers (accounts, exam numbers, item codes) end up in URLs and workflow ids.
VendorId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
# YYYYMMDD, as the tender gives dates.
CompactDate = Annotated[str, StringConstraints(pattern=r"^\d{8}$")]
Sex = Literal["1", "2"]
SEX_CODES = {"M": "1", "F": "2"}
ChangeType = Literal[1, 2, 3]  # 1 add, 2 edit, 3 delete
CHANGE_NAMES = {1: "新增", 2: "修改", 3: "删除"}


def compact(day: date) -> str:
    return day.strftime("%Y%m%d")


def parse_compact(value: str) -> date:
    """A YYYYMMDD date; ValueError when it is no date."""
    return datetime.strptime(value, "%Y%m%d").date()


class _Body(BaseModel):
    # Vendors add fields over time; unknown fields are ignored, not refused.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Customer(_Body):
    """客户个人信息数据集: what the platform checks a push against (name, sex, birth date)."""

    name: Annotated[Line, Field(min_length=1, max_length=50)]
    sex: Sex
    birth_date: CompactDate

    @field_validator("birth_date")
    @classmethod
    def _real_date(cls, value: str) -> str:
        parse_compact(value)
        return value


class ExamItem(_Body):
    """One item of an exam list: the vendor's code where known, else the platform's."""

    code: VendorId
    name: Annotated[Line, Field(min_length=1, max_length=100)]


# ---- outbound: US-K1, US-K2 ----------------------------------------------------------------


class BindRequest(_Body):
    name: Annotated[Line, Field(min_length=1, max_length=50)]
    sex: Sex
    birth_date: CompactDate
    id_number: Annotated[Line, Field(min_length=15, max_length=18)]


class BindAnswer(_Body):
    """code "0": found; "103": none found, the vendor created this account."""

    code: Literal["0", "103"]
    message: Annotated[Text, Field(max_length=500)] = ""
    account_no: VendorId


class BookRequest(_Body):
    booking_id: VendorId  # ours: the same booking sent again is one booking at the vendor
    account_no: VendorId
    customer: Customer
    exam_date: CompactDate
    items: list[ExamItem] = Field(min_length=1, max_length=200)


class BookAnswer(_Body):
    """code "0": booked under ``vendor_booking_no``; "202": refused, ``message`` says why."""

    code: Literal["0", "202"]
    message: Annotated[Text, Field(max_length=500)] = ""
    vendor_booking_no: VendorId | None = None
    # The vendor's number for the exam, which its guide, results and report will name.
    exam_no: VendorId | None = None


# ---- inbound: US-H1..US-H5 -----------------------------------------------------------------


class ExamListQuery(_Body):
    account_no: VendorId


class GuidePush(_Body):
    message_id: VendorId
    account_no: VendorId
    exam_no: VendorId
    customer: Customer
    exam_date: CompactDate
    # 大文本或URL地址: the guide itself, or where it is.
    guide: Annotated[Text, Field(min_length=1, max_length=20_000)]


class ResultItem(_Body):
    item_code: VendorId
    item_name: Annotated[Line, Field(min_length=1, max_length=100)]
    value: Annotated[Line, Field(max_length=200)] = ""  # empty on a delete
    unit: Line | None = Field(default=None, max_length=20)
    reference_range: Line | None = Field(default=None, max_length=100)
    # H above, L below the reference range, A abnormal otherwise (a positive test), N normal.
    abnormal_flag: Literal["N", "H", "L", "A"] | None = None


class ResultsPush(_Body):
    message_id: VendorId
    account_no: VendorId
    exam_no: VendorId
    customer: Customer
    change_type: ChangeType
    # When the vendor made the change: a push overtaken by a later one changes nothing.
    changed_at: AwareDatetime
    results: list[ResultItem] = Field(min_length=1, max_length=500)


class ReportPush(_Body):
    message_id: VendorId
    account_no: VendorId
    exam_no: VendorId
    customer: Customer
    # 大文本或带格式的HTML文档: kept as sent, shown to staff as text.
    report: Annotated[Text, Field(min_length=1, max_length=200_000)]
    conclusions: list[Line] = Field(default_factory=list, max_length=50)


class DictionaryItem(_Body):
    code: VendorId
    name: Annotated[Line, Field(min_length=1, max_length=100)]
    category_code: VendorId
    category_name: Annotated[Line, Field(min_length=1, max_length=64)]
    unit: Line | None = Field(default=None, max_length=20)


class DictionaryPush(_Body):
    message_id: VendorId
    change_type: ChangeType
    items: list[DictionaryItem] = Field(min_length=1, max_length=1000)


class ExamReply(BaseModel):
    """Every answer of the inbound interfaces: the tender's code, level and message."""

    code: str
    level: Literal["成功", "提示", "错误"]
    message: str


class ExamListReply(ExamReply):
    customer: Customer | None = None
    items: list[ExamItem] = Field(default_factory=list)
