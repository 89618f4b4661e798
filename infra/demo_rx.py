"""``make demo-rx``: one herbal prescription through review, payment and delivery, against a
running ``make run``, narrated as it happens.

The demo hospital's review deadline is set to 20 seconds (the real default is 2 minutes) so
the system's own approval arrives while you watch; ``ARGS=--pharmacist`` approves it as the
demo pharmacist instead, and ``ARGS=--unsafe`` prescribes 附子 with 半夏 (十八反): at the
deadline it goes back to the doctor, who removes 半夏, and the revision is reviewed again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from core.settings import get_settings
from core.webhook_auth import signed_headers
from infra.narration import platform_ready, run_demo, say

ADMIN = {"Authorization": "Bearer dev-admin"}
PHARMACIST = {"Authorization": "Bearer dev-pharmacist"}
HOSPITAL = "default"
ADDRESS = {
    "receiver": "张建国",
    "phone": "13800138001",
    "district": "静安区",
    "detail": "南京西路1号",
}
SAFE = [
    {"herb": "黄芪", "dose_g": 30},
    {"herb": "当归", "dose_g": 6},
    {"herb": "炒白术", "dose_g": 10},
    {"herb": "茯苓", "dose_g": 12},
    {"herb": "炙甘草", "dose_g": 6},
]
UNSAFE = [
    {"herb": "制附子", "dose_g": 9, "processing": "先煎"},
    {"herb": "法半夏", "dose_g": 9},
    {"herb": "茯苓", "dose_g": 12},
]


class Demo:
    def __init__(self, http: httpx.Client, api: str, his: str, secret: str) -> None:
        self.http, self.api, self.his, self.secret = http, api, his, secret

    def signed_post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        raw = json.dumps(body, ensure_ascii=False).encode()
        return self.http.post(
            f"{self.api}{path}", content=raw, headers=signed_headers(self.secret, raw)
        )

    def callbacks(self, number: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.http.get(
            f"{self.his}/sim/prescription-callbacks", params={"prescription_no": number}
        ).json()
        return found

    def detail(self, rx_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.http.get(
            f"{self.api}/api/prescriptions/{rx_id}", headers=PHARMACIST
        ).json()
        return found


def main() -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", default=f"http://{settings.api_host}:{settings.api_port}")
    parser.add_argument("--his", default=settings.his_base_url)
    parser.add_argument("--pharmacist", action="store_true", help="approve as the pharmacist")
    parser.add_argument("--unsafe", action="store_true", help="prescribe 附子 with 半夏")
    parser.add_argument("--deadline", type=int, default=20, help="review deadline, seconds")
    args = parser.parse_args()
    with httpx.Client(timeout=60.0) as http:
        if not platform_ready(http, args.api):
            return 1
        demo = Demo(http, args.api, args.his, settings.his_webhook_secret.get_secret_value())
        config = http.get(f"{args.api}/api/hospitals/{HOSPITAL}", headers=ADMIN).json()
        config["config"]["prescriptions"]["review"]["deadline_seconds"] = args.deadline
        http.put(f"{args.api}/api/hospitals/{HOSPITAL}", json=config, headers=ADMIN)
        say(f"Demo hospital: review deadline {args.deadline}s (production default 120s)")
        return run(demo, args)


def run(demo: Demo, args: argparse.Namespace) -> int:
    number = f"RX{datetime.now(UTC):%m%d%H%M%S}"
    items = UNSAFE if args.unsafe else SAFE
    body: dict[str, Any] = {
        "event_id": f"EVT-{uuid.uuid4().hex}",
        "hospital_code": HOSPITAL,
        "prescription_no": number,
        "patient_id": "P0001",
        "department_code": "tcm",
        "department_name": "中医科",
        "doctor_id": "D100",
        "doctor_name": "孙医生",
        "diagnosis": [{"name": "气血两虚证"}],
        "items": items,
        "doses": 7,
        "decoction": True,
        "delivery": {"mode": "delivery", "address": ADDRESS},
    }
    submitted = demo.signed_post("/webhooks/his/prescriptions", body).raise_for_status().json()
    rx_id = submitted["prescription_id"]
    say(f"HIS: prescription {number} submitted ({len(items)} herbs, 7 doses, 代煎, 配送)")
    for finding in submitted["findings"]:
        say(f"  base rules: {finding['message']}")
    if not submitted["findings"]:
        say("  base rules: no findings")
    shown = 0

    def show_callbacks() -> None:
        nonlocal shown
        for callback in demo.callbacks(number)[shown:]:
            reviewer = callback.get("reviewer")
            who = {None: "", "system": "by the system"}.get(reviewer, "by the pharmacist")
            reason = f" — {callback['reason']}" if callback.get("reason") else ""
            say(" ".join(p for p in ("callback to HIS:", callback["status"], who) if p) + reason)
            shown += 1

    if args.pharmacist:
        time.sleep(1)
        say("Pharmacist approves from the review queue")
        demo.http.post(
            f"{demo.api}/api/prescriptions/{rx_id}/decision",
            json={"round": 1, "outcome": "approve"},
            headers=PHARMACIST,
        ).raise_for_status()
    else:
        say(f"No pharmacist decides: the system concludes at the {args.deadline}s deadline")
    while (status := demo.detail(rx_id)["status"]) == "reviewing":
        show_callbacks()
        time.sleep(1)
    show_callbacks()
    if status == "returned":
        say("Doctor removes 法半夏 and resubmits")
        revision = {
            **{k: body[k] for k in ("diagnosis", "doses", "decoction")},
            "event_id": f"EVT-{uuid.uuid4().hex}",
            "hospital_code": HOSPITAL,
            "doctor_id": "D100",
            "items": UNSAFE[:1] + UNSAFE[2:],
        }
        demo.signed_post(f"/webhooks/his/prescriptions/{number}/revision", revision)
        while demo.detail(rx_id)["status"] in ("returned", "reviewing"):
            show_callbacks()
            time.sleep(1)
        show_callbacks()
    say("HIS: the patient pays")
    demo.signed_post(
        f"/webhooks/his/prescriptions/{number}/payment",
        {
            "event_id": f"EVT-{uuid.uuid4().hex}",
            "hospital_code": HOSPITAL,
            "payment_id": f"PAY{uuid.uuid4().hex[:8]}",
            "amount_fen": 12850,
            "paid_at": datetime.now(UTC).isoformat(),
        },
    ).raise_for_status()
    say("The service enterprise (simulator) reports each step every 5 seconds")
    while demo.detail(rx_id)["status"] not in ("delivered", "picked_up", "refunded"):
        show_callbacks()
        time.sleep(1)
    show_callbacks()
    messages = demo.http.get(
        f"{demo.api}/api/messages", params={"category": "prescription"}, headers=ADMIN
    ).json()["items"]
    for message in reversed(messages):
        if number in message["body"]:
            how = message["channel"] or f"{message['status']} (quiet hours)"
            say(f"{how} to patient: {message['body']}")
    say("Done: see the run in the Temporal UI as " + f"rx:{HOSPITAL}:{number}")
    return 0


if __name__ == "__main__":
    sys.exit(run_demo(main))
