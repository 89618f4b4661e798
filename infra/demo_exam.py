"""``make demo-exam``: one physical exam through the vendor interfaces (seed 003, US-K1..US-H5),
against a running ``make run``, narrated as it happens.

The care manager binds P0001's exam account after the data-use authorisation (US-K1), asks for
an exam in three days: the personalised list is drawn up and the health-management doctor ticks
an optional item, and the booking goes to the vendor simulator (US-K2). The simulator then
pushes the guide (US-H2, sent to the patient), the results (US-H3, one item it names in a way
the platform does not know: held, 501) and the report (US-H4). The demo maps the held item, and
shows the results, the abnormal ones, the follow-up run they opened and the doctors' alerts.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core.settings import get_settings
from infra.narration import platform_ready, run_demo, say

CARE_MANAGER = {"Authorization": "Bearer dev-care-manager"}
DOCTOR = {"Authorization": "Bearer dev-doctor-health"}
PATIENT = "P0001"
WAIT_SECONDS = 60


def _wait(http: httpx.Client, url: str, statuses: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    seen = ""
    while True:
        booking: dict[str, Any] = http.get(url, headers=CARE_MANAGER).raise_for_status().json()
        if booking["status"] != seen:
            seen = booking["status"]
            say(f"  booking status: {seen}")
        if seen in statuses or time.monotonic() > deadline:
            return booking
        time.sleep(1)


def play(http: httpx.Client, api: str, exam_sim: str) -> int:
    consent = http.get(f"{api}/api/exams/consent", headers=CARE_MANAGER).raise_for_status().json()
    say(f"Data-use authorisation {consent['version']}: {consent['text'][:40]}…")
    bound = http.post(
        f"{api}/api/exams/accounts",
        json={"his_patient_id": PATIENT, "consent_version": consent["version"], "accepted": True},
        headers=CARE_MANAGER,
    )
    body = bound.json()
    if "code" not in body:
        say(f"Binding refused ({bound.status_code}): {body.get('detail')}")
        return 1
    say(f"US-K1 bind: {body['code']} {body['message']} → account {body.get('account_no')}")
    if bound.status_code >= 400:
        return 1

    day = (datetime.now(UTC) + timedelta(days=3)).date()
    asked = http.post(
        f"{api}/api/exams/bookings",
        json={"his_patient_id": PATIENT, "exam_date": day.isoformat()},
        headers=CARE_MANAGER,
    ).raise_for_status()
    booking = asked.json()
    say(f"Exam asked for {day}: personalised list")
    for item in booking["listed"]:
        kind = "必选" if item["required"] else "可选"
        say(f"  [{kind}] {item['name']:<10} {item['reason']}")
    optional = [i["code"] for i in booking["listed"] if not i["required"]][:1]
    reviewed = http.post(
        f"{api}/api/exams/bookings/{booking['id']}/review",
        json={"ticked": optional},
        headers=DOCTOR,
    ).raise_for_status()
    say(f"Doctor reviewed: ticked {optional or 'nothing'} ({reviewed.json()['status']})")

    url = f"{api}/api/exams/bookings/{booking['id']}"
    booked = _wait(http, url, {"booked", "guided", "resulted", "reported", "closed", "failed"})
    if booked["status"] == "failed":
        say(f"US-K2 refused: {booked['last_code']} {booked['last_message']}")
        return 1
    say(f"US-K2 booked at the vendor: exam {booked['exam_no']}")
    _wait(http, url, {"closed"})
    for push in http.get(f"{exam_sim}/sim/pushes").raise_for_status().json()[-3:]:
        answer = push.get("response") or {}
        say(f"  vendor push {push['path']}: {push['status_code']} {answer.get('code')} "
            f"{answer.get('message')}")  # fmt: skip
    held = http.get(f"{api}/api/exams/held", headers=CARE_MANAGER).raise_for_status().json()
    for item in held:
        mapped = http.post(
            f"{api}/api/exams/mappings",
            json={"vendor_code": item["vendor_code"], "standard_code": "BMD"},
            headers=CARE_MANAGER,
        ).raise_for_status()
        say(f"Mapped held item {item['vendor_name']} → 骨密度: saved again for "
            f"{mapped.json()['resaved_exams']}")  # fmt: skip
    final = http.get(url, headers=CARE_MANAGER).raise_for_status().json()
    say("Results:")
    for result in final["results"]:
        flag = "↑↓ 异常" if result["abnormal"] else ""
        say(f"  {result['name']:<12} {result['value']} {result['unit'] or ''} {flag}")
    say(f"Abnormal at the report: {'、'.join(final['abnormal_items']) or 'none'}")
    say(f"Follow-up run: {final['followup_workflow_id'] or 'none'}")
    return 0


def main() -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", default=f"http://{settings.api_host}:{settings.api_port}")
    parser.add_argument("--exam-sim", default=settings.exam_base_url)
    args = parser.parse_args()
    with httpx.Client(timeout=60.0) as http:
        if not platform_ready(http, args.api):
            return 1
        return run_demo(lambda: play(http, args.api, args.exam_sim))


if __name__ == "__main__":
    raise SystemExit(main())
