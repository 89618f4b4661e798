"""Message categories: which a patient may switch off, which bypass quiet hours, and which
variables the platform supplies when it sends one (the contract templates are checked against).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Category(StrEnum):
    FOLLOWUP = "followup"  # 随访
    EDUCATION = "education"  # 宣教
    SATISFACTION = "satisfaction"  # 满意度调查
    REMINDER = "reminder"  # 用药、复诊、检查提醒
    PAYMENT = "payment"  # 缴费、退费
    PRESCRIPTION = "prescription"  # 处方审核、配送
    COMPLAINT = "complaint"  # 投诉与表扬的处理结果：the patient asked, so it always goes out
    NOTICE = "notice"  # 其他系统推送的通知 (MSG-4, MSG-5)
    CRITICAL = "critical"  # 危急值：always urgent, never switched off
    # 上门护理订单: the patient is waiting for a nurse at home, and head nurses get its alarms.
    NURSING = "nursing"


# Patients may switch these off (MSG-6). Payment, prescription and critical-value messages are
# part of care or of a transaction the patient started, so they always go out.
OPTIONAL_CATEGORIES: frozenset[str] = frozenset(
    {
        Category.FOLLOWUP,
        Category.EDUCATION,
        Category.SATISFACTION,
        Category.REMINDER,
        Category.NOTICE,
    }
)

# Sent at once even inside quiet hours.
ALWAYS_URGENT: frozenset[str] = frozenset({Category.CRITICAL})

# Always available to every template.
COMMON_VARIABLES: frozenset[str] = frozenset({"hospital_name", "hospital_phone", "patient_name"})

# What the platform supplies for each category when its own workflows send. Templates in these
# categories may use only these (plus the common ones); NOTICE templates declare their own,
# which the pushing system must then supply.
CATEGORY_VARIABLES: dict[str, frozenset[str]] = {
    Category.FOLLOWUP: frozenset(
        {"step_title", "valid_until", "link", "discharged_at", "anchor_at", "advice"}
    ),
    Category.EDUCATION: frozenset(
        {"step_title", "article_title", "valid_until", "link", "reminder_text"}
    ),
    Category.SATISFACTION: frozenset({"step_title", "valid_until", "link", "visit_date"}),
    Category.REMINDER: frozenset(
        {"step_title", "reminder_text", "due_at", "link", "valid_until", "advice"}
    ),
    Category.PAYMENT: frozenset({"order_title", "amount", "status_text", "link"}),
    Category.PRESCRIPTION: frozenset({"prescription_no", "status_text", "link"}),
    Category.COMPLAINT: frozenset({"case_no", "status_text", "link"}),
    Category.NURSING: frozenset(
        {"order_title", "status_text", "link", "valid_until", "alarm_text"}
    ),
}

_SAMPLE_TIME = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)

# Realistic values for previews and for the SMS length check at save time.
SAMPLE_VALUES: dict[str, Any] = {
    "hospital_name": "示例市第一人民医院",
    "hospital_phone": "0571-87654321",
    "patient_name": "欧阳建国",
    "step_title": "出院第30天随访",
    "article_title": "冠心病患者出院后的饮食与运动",
    "valid_until": _SAMPLE_TIME,
    "discharged_at": _SAMPLE_TIME,
    "visit_date": _SAMPLE_TIME,
    "due_at": _SAMPLE_TIME,
    "link": "https://followup.hospital.example/p/AV316_lRYFD4gqPW-8XND3VrBIZXxKtmirMOyYzxQBLVq6",
    "reminder_text": "请按时服用阿司匹林肠溶片，每日一次，每次100mg",
    "order_title": "门诊缴费（心内科）",
    "amount": "¥1,234.56",
    "status_text": "已完成",
    "prescription_no": "RX202611250001",
    "case_no": "TS20261125-0001",
    "anchor_at": _SAMPLE_TIME,
    "advice": "请于三日内到内分泌科门诊复诊，如有不适立即就医",
}
GENERIC_SAMPLE = "示例内容十个汉字长度"


def sample_value(name: str) -> Any:
    return SAMPLE_VALUES.get(name, GENERIC_SAMPLE)


def is_urgent(category: str, requested: bool) -> bool:
    return requested or category in ALWAYS_URGENT
