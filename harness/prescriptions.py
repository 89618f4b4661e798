"""Sample herbal prescriptions as the HIS submits them, for the prescription tests and
``bench/prescription_autoapproval.py``."""

from __future__ import annotations

import uuid
from typing import Any

HOSPITAL = "H-JA01"

# 当归补血汤加味: no findings.
CLEAN_ITEMS = [
    {"herb": "黄芪", "dose_g": 30},
    {"herb": "当归", "dose_g": 6},
    {"herb": "白术", "dose_g": 10, "processing": None},
    {"herb": "茯苓", "dose_g": 12},
    {"herb": "炙甘草", "dose_g": 6},
]
# 附子 with 半夏: 十八反.
UNSAFE_ITEMS = [
    {"herb": "制附子", "dose_g": 9, "processing": "先煎"},
    {"herb": "法半夏", "dose_g": 9},
    {"herb": "茯苓", "dose_g": 12},
]


def prescription(
    number: str | None = None,
    *,
    items: list[dict[str, Any]] | None = None,
    mode: str = "delivery",
    decoction: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": f"EVT-{uuid.uuid4().hex}",
        "hospital_code": HOSPITAL,
        "prescription_no": number or f"RX{uuid.uuid4().hex[:10].upper()}",
        "patient_id": "P0001",
        "department_code": "tcm",
        "department_name": "中医科",
        "doctor_id": "D100",
        "doctor_name": "孙医生",
        "diagnosis": [{"code": "ZZ.01", "name": "气血两虚证"}],
        "items": items or CLEAN_ITEMS,
        "doses": 7,
        "decoction": decoction,
        "delivery": {
            "mode": mode,
            "address": {
                "receiver": "张建国",
                "phone": "13800138001",
                "district": "静安区",
                "detail": "南京西路1号",
            },
        }
        if mode == "delivery"
        else {"mode": "pickup", "pickup_site": "静安区中心医院药房"},
    }
    body.update(extra)
    return body
