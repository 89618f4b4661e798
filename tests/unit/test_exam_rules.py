"""The exam domain's pure rules: the tender's return messages with their variables, the
personalised list from age, sex and questionnaire answers, how a vendor's item is matched and
judged, the customer check (401) and the booking window (201)."""

from __future__ import annotations

from datetime import date

import pytest

from exams.catalogue import catalogue, judged_abnormal, match_item
from exams.checks import OnRecord, booking_window, mismatched_fields, within_window
from exams.codes import INTERFACE_CODES, MESSAGES, reply
from exams.personalised import age_on, personalised_list

TODAY = date(2026, 12, 3)


def test_every_code_the_tender_lists_has_its_text() -> None:
    listed = {code for codes in INTERFACE_CODES.values() for code in codes}
    assert listed == set(MESSAGES) - {"0"}
    assert reply("201", start="2026-12-03", end="2026-12-17").message == (
        "请输入2026-12-03至2026-12-17的任意日期。"
    )
    assert reply("301", account_no="TJ1").message == "查无记录。TJ1"
    assert reply("104", reason="超时").message == "绑定失败！超时"
    assert reply("701").message == "保存失败。"
    assert reply("402").message == "保存失败。"  # a missing variable is left out, never an error
    assert reply("401", params="姓名").level == "错误"
    assert reply("103", params="姓名").level == "提示"


def _codes(**kwargs: object) -> dict[str, bool]:
    items = personalised_list(today=TODAY, known=catalogue(), **kwargs)  # type: ignore[arg-type]
    return {i.code: i.required for i in items}


def test_the_list_grows_with_age_sex_and_answers() -> None:
    young = _codes(birth_date=date(2000, 1, 1), sex="M", answers={})
    assert all(young.values())
    assert "GASTROSCOPY" not in young
    older_woman = _codes(birth_date=date(1960, 1, 1), sex="F", answers={})
    assert older_woman["BMD"] is False
    assert older_woman["C13-UBT"] is False
    assert "BMD" not in _codes(birth_date=date(1960, 1, 1), sex="M", answers={})
    answered = _codes(
        birth_date=date(2000, 1, 1),
        sex="M",
        answers={"diabetes-assessment": {"fasting_glucose": ["7.2"]}, "phq-9": {"phq9": 9}},
    )
    assert answered["HBA1C"] is True
    assert "PSY" not in answered  # PHQ-9 below 10
    unknown_age = _codes(birth_date=None, sex=None, answers={})
    assert "CEA" not in unknown_age


def test_age_counts_whole_years() -> None:
    assert age_on(date(1976, 12, 4), TODAY) == 49
    assert age_on(date(1976, 12, 3), TODAY) == 50


@pytest.mark.parametrize(
    ("code", "name", "mapped", "expected"),
    [
        ("V-1", "空腹血糖", {}, "GLU"),
        ("V-2", "血压（收缩压）", {}, "SBP"),  # an alias, full-width brackets
        ("V-3", "幽门螺杆菌呼气试验", {}, "C13-UBT"),
        ("V-4", "骨密度检测", {}, None),  # held
        ("V-4", "骨密度检测", {"V-4": "BMD"}, "BMD"),  # once mapped
    ],
)
def test_vendor_items_are_matched_by_mapping_then_name(
    code: str, name: str, mapped: dict[str, str], expected: str | None
) -> None:
    found = match_item(code, name, mapped, catalogue())
    assert (found.code if found else None) == expected


def test_a_result_is_abnormal_by_the_vendors_flag_or_else_the_reference_range() -> None:
    glucose = catalogue().items["GLU"]
    assert judged_abnormal(glucose, "7.0", None)
    assert not judged_abnormal(glucose, "5.0", None)
    assert judged_abnormal(glucose, "3.1", None)
    assert not judged_abnormal(glucose, "7.0", "N")  # the vendor knows its own method
    assert judged_abnormal(catalogue().items["ECG"], "ST段压低", "A")
    assert not judged_abnormal(catalogue().items["ECG"], "窦性心律", None)


def test_the_customer_check_names_the_fields_that_differ() -> None:
    record = OnRecord(name="张建国", sex="M", birth_date=date(1956, 3, 12))
    assert mismatched_fields(record, name="张建国", sex="1", birth_date=date(1956, 3, 12)) == []
    assert mismatched_fields(record, name="张建", sex="2", birth_date=date(1956, 3, 13)) == [
        "姓名",
        "性别",
        "出生日期",
    ]
    # What the record does not hold cannot be checked against.
    unknown = OnRecord(name="张建国", sex=None, birth_date=None)
    assert mismatched_fields(unknown, name="张建国", sex="2", birth_date=date(1990, 1, 1)) == []


def test_the_booking_window_is_today_to_fourteen_days_ahead() -> None:
    assert booking_window(TODAY) == (TODAY, date(2026, 12, 17))
    assert within_window(TODAY, TODAY)
    assert within_window(date(2026, 12, 17), TODAY)
    assert not within_window(date(2026, 12, 18), TODAY)
    assert not within_window(date(2026, 12, 2), TODAY)
