"""``make demo-pay``: one outpatient bill paid with insurance and WeChat Pay, then partly refunded,
against a running ``make run``, narrated as it happens.

The HIS simulator gets a new bill for 张建国 (P0001, insured): a statin the fund pays 70% of and
an ECG he pays himself. The platform pre-settles it with the HIS, settles the fund's part with
the insurance centre, opens a WeChat Pay order for the rest and texts him the link. By default
the demo pays at the provider's cashier for him; ``ARGS=--manual`` waits for you to open the
SMS link in a browser and pay there; ``ARGS=--unpaid`` shortens the pay window to 30 seconds and
lets it close, so you see the saga undo each step in reverse.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import httpx

from contracts.payment import out_trade_no
from core.settings import get_settings
from infra.launcher import SIM_WECHATPAY_URL
from infra.narration import platform_ready, run_demo, say

ADMIN = {"Authorization": "Bearer dev-admin"}
HOSPITAL = "default"
PATIENT = "P0001"


def yuan(fen: int | None) -> str:
    return f"¥{(fen or 0) / 100:.2f}"


class Demo:
    def __init__(
        self, http: httpx.Client, api: str, his: str, insurance: str, provider: str
    ) -> None:
        self.http, self.api, self.his = http, api, his
        self.insurance, self.provider = insurance, provider
        self.seen_saga: str | None = None

    def order(self, order_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.http.get(
            f"{self.api}/api/payments/orders/{order_id}", headers=ADMIN
        ).json()
        return found

    def follow(self, order_id: str, until: set[str], timeout: float = 600) -> dict[str, Any]:
        """Prints each step of the saga until the order reaches one of ``until``."""
        deadline = time.monotonic() + timeout
        while True:
            order = self.order(order_id)
            step = f"{order['status']}/{order['saga_status']}"
            if step != self.seen_saga:
                say(f"  order {order['status']}, saga step: {order['saga_status'] or '-'}")
                self.seen_saga = step
            if order["status"] in until or time.monotonic() > deadline:
                return order
            time.sleep(0.5)

    def messages(self, order_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.http.get(
            f"{self.api}/api/messages",
            params={"workflow_id": f"payment:{order_id}"},
            headers=ADMIN,
        ).json()["items"]
        return found

    def ledgers(self) -> None:
        for name, url in (
            ("HIS", f"{self.his}/sim/charging/ledger"),
            ("insurance centre", f"{self.insurance}/sim/ledger"),
            ("WeChat Pay", f"{self.provider}/sim/ledger"),
        ):
            say(f"  {name} ledger: {self.http.get(url).json()}")


def main() -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", default=f"http://{settings.api_host}:{settings.api_port}")
    parser.add_argument("--provider", default=SIM_WECHATPAY_URL, help="WeChat Pay simulator")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--manual", action="store_true", help="you pay from the SMS link")
    mode.add_argument("--unpaid", action="store_true", help="nobody pays; the window closes")
    args = parser.parse_args()
    with httpx.Client(timeout=60.0) as http:
        if not platform_ready(http, args.api):
            return 1
        demo = Demo(
            http,
            args.api,
            settings.his_base_url,
            settings.insurance_base_url,
            args.provider,
        )
        hospital = http.get(f"{args.api}/api/hospitals/{HOSPITAL}", headers=ADMIN).json()
        window = 30 if args.unpaid else 900
        hospital["config"]["payments"]["policy"]["pay_window_seconds"] = window
        http.put(f"{args.api}/api/hospitals/{HOSPITAL}", json=hospital, headers=ADMIN)
        say(f"Demo hospital: pay window {window}s (production default 900s)")
        return run(demo, args)


def run(demo: Demo, args: argparse.Namespace) -> int:
    bill = (
        demo.http.post(
            f"{demo.his}/sim/charging/orders",
            json={
                "patient_id": PATIENT,
                "title": "心内科门诊缴费",
                "items": [
                    {"name": "阿托伐他汀钙片 20mg×28片", "amount_fen": 6200, "insurable_fen": 6200},
                    {"name": "心电图检查", "amount_fen": 2500},
                ],
            },
        )
        .raise_for_status()
        .json()
    )
    say(
        f"HIS: bill {bill['order_no']} for 张建国, {yuan(bill['total_fen'])} "
        "(statin ¥62.00 in the insurance catalogue, ECG ¥25.00 self-pay)"
    )
    created = (
        demo.http.post(
            f"{demo.api}/api/payments/orders",
            json={
                "his_order_no": bill["order_no"],
                "patient_id": PATIENT,
                "amount_fen": bill["total_fen"],
                "use_insurance": True,
                "pay": True,
            },
            headers=ADMIN,
        )
        .raise_for_status()
        .json()
    )
    order_id = created["id"]
    say(f"Payment saga started: see payment:{order_id} in the Temporal UI")
    order = demo.follow(order_id, {"settled", "failed"}, timeout=0)
    while order["status"] == "paying" and order["saga_status"] != "awaiting_payment":
        time.sleep(0.5)
        order = demo.follow(order_id, {"settled", "failed"}, timeout=0)
    say(
        f"Split: insurance {yuan(order['insurance_fen'])} settled with the insurance centre, "
        f"{yuan(order['self_pay_fen'])} for 张建国 to pay by WeChat Pay"
    )
    time.sleep(1)
    for message in demo.messages(order_id):
        say(f"{message['channel'] or message['status']} to patient: {message['body']}")
    if args.unpaid:
        say("Nobody pays: at the end of the window the saga compensates in reverse")
        order = demo.follow(order_id, {"failed"})
        for step in order["compensations"]:
            say(f"  undone: {step['step']} — {step.get('note') or step.get('outcome') or ''}")
        say(f"Order failed: {order['failure_reason']}")
        demo.ledgers()
        return 0
    if args.manual:
        say("Open the link above in a browser (phone view), tap 微信支付, then 确认支付")
    else:
        time.sleep(2)
        say("The patient pays at the WeChat Pay cashier (simulator)")
        demo.http.post(
            f"{demo.provider}/sim/orders/{out_trade_no(order_id)}/pay"
        ).raise_for_status()
    order = demo.follow(order_id, {"settled", "failed"})
    if order["status"] != "settled":
        say(f"Order {order['status']}: {order['failure_reason']}")
        return 1
    say(f"Settled: HIS receipt {order['receipt_no']}, WeChat Pay {order['transaction_id']}")
    say("The cashier refunds ¥25.00 of it: split back in proportion along both paths")
    refund = (
        demo.http.post(
            f"{demo.api}/api/payments/orders/{order_id}/refunds",
            json={"amount_fen": 2500, "reason": "心电图检查取消"},
            headers=ADMIN | {"Idempotency-Key": f"demo-{order_id}"},
        )
        .raise_for_status()
        .json()
    )
    while refund["status"] not in ("succeeded", "failed"):
        time.sleep(0.5)
        order = demo.order(order_id)
        refund = next(r for r in order["refunds"] if r["id"] == refund["id"])
    say(
        f"Refund {refund['status']}: insurance {yuan(refund['insurance_fen'])}, "
        f"WeChat Pay {yuan(refund['self_pay_fen'])}; order now {order['status']}"
    )
    demo.ledgers()
    return 0


if __name__ == "__main__":
    sys.exit(run_demo(main))
