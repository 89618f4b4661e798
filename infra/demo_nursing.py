"""``make demo-nursing``: one home-nursing visit (互联网+护理服务) against a running ``make run``,
narrated as it happens.

The administrator puts a PICC maintenance item on offer and registers the demo nurses (王护士 for
PICC, the orthopaedics nurse as head nurse); 王护士 places an order for P0001 as the patient
would from WeChat; the real-name check passes at the identity simulator; the demo pays at the
WeChat Pay simulator's cashier; 王护士 takes the order, records the visit, the patient signs,
the nursing record is written and the patient rates it. ``ARGS=--alarm`` also presses the
nurse's alarm during the visit: the head nurse's SMS lands at the Twilio simulator.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from contracts.payment import out_trade_no
from core.settings import get_settings
from infra.launcher import SIM_TWILIO_URL, SIM_WECHATPAY_URL
from infra.narration import platform_ready, run_demo, say

ADMIN = {"Authorization": "Bearer dev-admin"}
NURSE = {"Authorization": "Bearer dev-nurse-cardiology"}
ITEM = {
    "name": "PICC导管维护",
    "description": "冲管、封管、更换敷料和输液接头",
    "price_fen": 20000,
    "visit_fee_fen": 5000,
    "expected_minutes": 60,
    "qualification": "picc",
    "assessment_form": "home-nursing-assessment",
}
RECORD = {
    "temperature": ["36.6"],
    "systolic": ["132"],
    "diastolic": ["84"],
    "performed": ["picc"],
    "site": ["good"],
    "tolerance": ["good"],
    "educated": ["yes"],
    "advice": ["一周后再次维护，保持敷料干燥"],
}
WAIT_SECONDS = 60


def _staff_id(http: httpx.Client, api: str, name: str) -> str:
    staff = http.get(f"{api}/api/admin/staff", headers=ADMIN).raise_for_status().json()
    rows = staff["items"] if isinstance(staff, dict) else staff
    return str(next(s["id"] for s in rows if s["name"] == name))


def _wait(http: httpx.Client, url: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        order: dict[str, Any] = http.get(url, headers=NURSE).raise_for_status().json()
        if order["status"] == wanted or time.monotonic() > deadline:
            return order
        time.sleep(1)


def play(http: httpx.Client, args: argparse.Namespace) -> int:
    api = args.api
    http.put(f"{api}/api/nursing/items/picc", json=ITEM, headers=ADMIN).raise_for_status()
    say("Item on offer: PICC导管维护 ¥200.00 (上门费 ¥50.00 kept if cancelled after departure)")
    wang = _staff_id(http, api, "王护士")
    head = _staff_id(http, api, "骨科护士")
    http.put(f"{api}/api/nursing/nurses/{wang}", json={"qualifications": ["picc"]}, headers=ADMIN)
    http.put(
        f"{api}/api/nursing/nurses/{head}",
        json={"head_nurse": True, "phone": "13900139999"},
        headers=ADMIN,
    ).raise_for_status()
    say("Nurses: 王护士 (PICC), 骨科护士 (head nurse, alarms by SMS)")
    visit_at = datetime.now(UTC) + timedelta(hours=3)
    placed = http.post(
        f"{api}/api/nursing/orders",
        json={
            "patient_id": "P0001",
            "item_code": "picc",
            "visit_at": visit_at.isoformat(),
            "address": "西昌市长安街道胜利路18号",
            "consent_accepted": True,
            "idempotency_key": uuid.uuid4().hex,
        },
        headers=NURSE,
    ).raise_for_status()
    order = placed.json()
    url = f"{api}/api/nursing/orders/{order['id']}"
    say(f"Order placed for P0001: see {order['workflow_id']} in the Temporal UI")
    deadline = time.monotonic() + WAIT_SECONDS
    while not order.get("payment_order_id") and time.monotonic() < deadline:
        time.sleep(1)
        order = http.get(url, headers=NURSE).raise_for_status().json()
    if order["status"] == "failed":
        say(f"Stopped: {order['steps'][-1].get('note')}")
        return 1
    say("Real-name check passed; the visit is billed at the HIS")
    payment = order["payment_order_id"]
    for _ in range(WAIT_SECONDS):
        paid = http.post(f"{args.provider}/sim/orders/{out_trade_no(payment)}/pay")
        if paid.status_code == 200:
            break
        time.sleep(1)
    say("The patient paid ¥200.00 at the WeChat Pay cashier")
    _wait(http, url, "waiting_nurse")
    http.post(f"{url}/take", headers=NURSE).raise_for_status()
    say("王护士 took the order (接单)")
    for step, text in (("depart", "出发"), ("arrive", "到达"), ("start", "开始服务")):
        http.post(f"{url}/visit/{step}", headers=NURSE).raise_for_status()
        say(f"  {text}")
    if args.alarm:
        http.post(f"{url}/alarm", json={"note": "演示报警"}, headers=NURSE).raise_for_status()
        say(f"  一键报警: the head nurse's SMS is at {args.twilio}/sim/messages")
    http.post(f"{url}/visit/finish", headers=NURSE).raise_for_status()
    say("  服务完成")
    http.post(f"{url}/signature", json={"signed_name": "张建国"}, headers=NURSE).raise_for_status()
    say("The patient signed")
    http.post(f"{url}/assessment", json={"answers": RECORD}, headers=NURSE).raise_for_status()
    say("王护士 wrote the nursing record (上门护理服务记录单)")
    http.post(f"{url}/rating", json={"stars": 5, "comment": "很专业"}, headers=NURSE)
    done = _wait(http, url, "completed")
    say(f"Order {done['status_name']}: {len(done['steps'])} steps, rated {done['rating']}★")
    return 0


def main() -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", default=f"http://{settings.api_host}:{settings.api_port}")
    parser.add_argument("--provider", default=SIM_WECHATPAY_URL, help="WeChat Pay simulator")
    parser.add_argument("--twilio", default=SIM_TWILIO_URL, help="Twilio simulator")
    parser.add_argument("--alarm", action="store_true", help="press the nurse's alarm")
    args = parser.parse_args()
    with httpx.Client(timeout=60.0) as http:
        if not platform_ready(http, args.api):
            return 1
        return run_demo(lambda: play(http, args))


if __name__ == "__main__":
    raise SystemExit(main())
