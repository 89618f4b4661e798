from __future__ import annotations

import json
import logging

import pytest
import structlog

from core.logs import configure_logging, mask_name, mask_text


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("13800138001", "138****8001"),
        ("call +86 139-0013-9002 now", "call 139****9002 now"),
        ("tel:8613700137003", "tel:137****7003"),
        ("id 11010519491231002X ok", "id 1101**********002X ok"),
        (
            "GET /p/AS6Xwz2eWl86pgmCVy0g04trDOGtRfo9FxwQ4Q9McnqEF2IFAA HTTP/1.1",
            "GET /p/<token> HTTP/1.1",
        ),
        ("order 2026112200001234 total 10", "order 2026112200001234 total 10"),
    ],
)
def test_identifiers_in_free_text_are_masked(raw: str, masked: str) -> None:
    assert mask_text(raw) == masked


@pytest.mark.parametrize(("name", "masked"), [("张三", "张*"), ("欧阳娜娜", "欧***"), ("李", "*")])
def test_names_keep_only_the_first_character(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def test_json_log_lines_never_carry_identifiers(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=True, level="INFO")
    try:
        structlog.get_logger("test").info(
            "patient contacted",
            patient_name="张建国",
            phone="13800138001",
            detail={"name": "李秀英", "note": "身份证 11010519491231002X"},
        )
        logging.getLogger("library").warning("sms to 13900139002 failed")
        try:
            raise ValueError("bad number 13700137003")
        except ValueError:
            structlog.get_logger("test").exception("send failed")
    finally:
        configure_logging(json=False, level="INFO")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    text = json.dumps(lines, ensure_ascii=False)
    for secret in (
        "张建国",
        "13800138001",
        "李秀英",
        "11010519491231002X",
        "13900139002",
        "13700137003",
    ):
        assert secret not in text
    assert lines[0]["patient_name"] == "张**"
    assert lines[0]["detail"]["note"] == "身份证 1101**********002X"
    assert "137****7003" in lines[2]["exception"]
