"""What the fuzzer found, pinned: each absurd input is refused at the edge with a 422 naming the
field's location, and nothing is written. The fuzz test (test_fuzz.py) finds these by chance;
these find them every time."""

from __future__ import annotations

import pytest

from core.models import StaffRole
from harness.staff import add_staff
from tests.api.conftest import Api, discharge_event


async def _admin(api: Api) -> dict[str, str]:
    token = await add_staff(api.sessions, StaffRole.ADMIN, department_code=None, name="管理员")
    return {"Authorization": f"Bearer {token}"}


def _locs(response_json: dict[str, object]) -> list[list[object]]:
    detail = response_json["detail"]
    assert isinstance(detail, list)
    return [entry["loc"] for entry in detail]


@pytest.mark.parametrize("bill_date", ["0249-01-01", "1999-12-31", "2100-01-01"])
async def test_reconciliation_refuses_bill_dates_outside_the_window(
    api: Api, bill_date: str
) -> None:
    headers = await _admin(api)
    before = await api.counts()
    for method in ("GET", "POST"):
        suffix = "/run" if method == "POST" else ""
        response = await api.http.request(
            method, f"/api/payments/reconciliations/{bill_date}{suffix}", headers=headers
        )
        assert response.status_code == 422, response.text
        assert _locs(response.json()) == [["path", "bill_date"]]
    assert await api.counts() == before


async def test_date_filters_outside_the_window_are_refused(api: Api) -> None:
    headers = await _admin(api)
    response = await api.http.get(
        "/api/payments/orders", params={"created_from": "0249-01-01T00:00:00Z"}, headers=headers
    )
    assert response.status_code == 422
    assert _locs(response.json()) == [["query", "created_from"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        # A non-ASCII signature made hmac.compare_digest raise: a 500.
        ({"signature": "é" * 40, "timestamp": "1700000000", "nonce": "n0nce"}, "signature"),
        ({"signature": "0" * 40, "timestamp": "12:00", "nonce": "n0nce"}, "timestamp"),
        ({"signature": "0" * 40, "timestamp": "1700000000", "nonce": "n\x00"}, "nonce"),
    ],
)
async def test_wechat_event_query_is_validated(
    api: Api, params: dict[str, str], field: str
) -> None:
    response = await api.http.post("/webhooks/wechat", params=params, content=b"<xml/>")
    assert response.status_code == 422, response.text
    assert ["query", field] in _locs(response.json())


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        # A control character in the HIS order number made the HIS client's URL invalid: a 500.
        (
            "/api/payments/orders",
            {"his_order_no": "SF\x12001", "patient_id": "P0001", "amount_fen": 100},
            "his_order_no",
        ),
        (
            "/api/payments/orders",
            {"his_order_no": "../patients", "patient_id": "P0001", "amount_fen": 100},
            "his_order_no",
        ),
        (
            "/api/consultations",
            {
                "his_order_no": "SF0001",
                "patient_id": "P0001",
                "amount_fen": 100,
                "question": "胸闷\x00",
            },
            "question",
        ),
        (
            "/api/consultations",
            {"his_order_no": "SF0001", "patient_id": "P\x7f1", "amount_fen": 100, "question": "?"},
            "patient_id",
        ),
    ],
)
async def test_payment_bodies_with_control_characters_write_nothing(
    api: Api, path: str, body: dict[str, object], field: str
) -> None:
    headers = await _admin(api)
    before = await api.counts()
    response = await api.http.post(path, json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert _locs(response.json()) == [["body", field]]
    assert await api.counts() == before


async def test_non_json_body_is_a_422(api: Api) -> None:
    headers = await _admin(api)
    response = await api.http.post(
        "/api/payments/orders",
        content=b"\xff\xfenot json",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert _locs(response.json())[0][0] == "body"


async def test_pathway_version_beyond_int32_is_a_422(api: Api) -> None:
    # It reached PostgreSQL's integer column and overflowed: a 500.
    headers = await _admin(api)
    response = await api.http.put(
        "/api/pathways/inpatient-discharge/versions/456322477208581439488",
        json={},
        headers=headers,
    )
    assert response.status_code == 422
    assert _locs(response.json()) == [["path", "version"]]


async def test_overly_deep_definition_is_a_problem_not_a_crash(api: Api) -> None:
    headers = await _admin(api)
    deep = b"[" * 100_000 + b"]" * 100_000
    response = await api.http.post(
        "/api/pathways/validate",
        content=deep,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["path"] == "(document)"


async def test_signed_event_with_a_control_character_is_a_422(api: Api) -> None:
    # The fuzzer stops at the signature (401); a signed event is the HIS's, and a NUL in its
    # text would have reached PostgreSQL, which refuses NUL in text: a 500.
    event = discharge_event()
    event["encounter"]["ward"] = "心内科\x00一病区"
    before = await api.counts()
    response = await api.post_event(event)
    assert response.status_code == 422, response.text
    assert _locs(response.json()) == [["body", "encounter", "ward"]]
    assert await api.counts() == before
