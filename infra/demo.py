"""``make demo``: plays one discharge through the HIS simulator against a running ``make run``
and narrates the follow-up as it happens, on a short clock (a plan day lasts a few seconds).

By default it waits for you to open each SMS link in a browser (try your browser's phone
emulation) and answer; ``make demo ARGS=--auto`` answers by itself: abnormal on day 3 (the nurse
is alerted), normal on day 7.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any
from urllib.parse import quote

import httpx

from core.settings import Settings, get_settings
from infra.narration import platform_ready, run_demo, say

NURSE_TOKEN = "dev-nurse-cardiology"  # noqa: S105 - public demo token, development only
ANSWERS = {
    "day3": {"overall": "poor", "symptoms": ["fever"], "medication": "on_time", "notes": "低热"},
    "day7": {"overall": "good", "symptoms": ["none"], "medication": "on_time"},
    "day30": {"overall": "good", "symptoms": ["none"], "medication": "on_time"},
}


SENT = {"sent", "delivered", "read"}


def main() -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", default=f"http://{settings.api_host}:{settings.api_port}")
    parser.add_argument("--his", default=settings.his_base_url)
    parser.add_argument("--patient", default="P0002", help="HIS patient id from the simulator seed")
    parser.add_argument(
        "--day-seconds",
        type=float,
        default=None,
        help="how long one plan day lasts (default 20 s, time to answer a link by hand; "
        "6 s with --auto)",
    )
    parser.add_argument("--auto", action="store_true", help="answer the forms automatically")
    parser.add_argument(
        "--wechat",
        action="store_true",
        help="bind the patient to the WeChat simulator first, so messages go by WeChat",
    )
    args = parser.parse_args()
    if args.day_seconds is None:
        args.day_seconds = 6.0 if args.auto else 20.0
    return run_demo(lambda: _play(settings, args))


def _play(settings: Settings, args: argparse.Namespace) -> int:
    staff = {"Authorization": f"Bearer {NURSE_TOKEN}"}
    with httpx.Client(timeout=30.0) as http:
        if not platform_ready(http, args.api):
            return 1

        encounter = (
            http.post(f"{args.his}/sim/encounters", json={"patient_id": args.patient})
            .raise_for_status()
            .json()
        )
        say(f"HIS: patient {args.patient} admitted to 心内科 as {encounter['encounter_id']}")
        speedup = 86400 / args.day_seconds
        result = (
            http.post(
                f"{args.his}/sim/encounters/{encounter['encounter_id']}/discharge",
                json={"demo_clock_speedup": speedup},
            )
            .raise_for_status()
            .json()
        )
        delivery = result["deliveries"][0]
        if delivery["status_code"] not in (200, 202):
            say(f"The platform refused the discharge event: {delivery}")
            return 1
        runs = delivery["response"]["runs"]
        for other in runs:
            if other["plan_id"] != "inpatient-discharge":
                say(f"HIS: the same discharge also started {other['plan_id']}")
        workflow_id = next(r["workflow_id"] for r in runs if r["plan_id"] == "inpatient-discharge")
        say(f"HIS: discharge event delivered, follow-up run started: {workflow_id}")
        say(
            f"Temporal UI: {settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
            f"/workflows/{quote(workflow_id, safe='')}"
        )
        say(
            f"One plan day lasts {args.day_seconds:g}s: day 3 is about "
            f"{3 * args.day_seconds:g}s away, day 30 about {30 * args.day_seconds:g}s."
        )
        _choose_channel(http, args, staff, workflow_id)
        return _follow(http, args, staff, workflow_id)


def _choose_channel(
    http: httpx.Client, args: argparse.Namespace, staff: dict[str, str], workflow_id: str
) -> None:
    """Binds the patient to WeChat with --wechat, and unbinds them without it, so that one
    demo's choice does not silently carry into the next."""
    while (run := http.get(f"{args.api}/api/runs/{workflow_id}", headers=staff)).status_code == 404:
        time.sleep(0.3)
    patient_id = run.raise_for_status().json()["patient"]["id"]
    # The WeChat simulator's demo followers are oDemo0001..oDemo0005.
    openid = f"oDemo{int(args.patient.lstrip('P') or 1):04d}"
    binding = (
        {"wechat_openid": openid, "preferred_channel": "wechat"}
        if args.wechat
        else {"wechat_openid": None, "preferred_channel": None}
    )
    http.put(
        f"{args.api}/api/patients/{patient_id}/messaging", json=binding, headers=staff
    ).raise_for_status()
    if args.wechat:
        say(f"Patient bound to WeChat as {openid}: messages go by WeChat, SMS is the fallback")
    else:
        say("Patient not bound to WeChat (add --wechat for that): messages go by SMS")


def _follow(
    http: httpx.Client, args: argparse.Namespace, staff: dict[str, str], workflow_id: str
) -> int:
    seen: dict[str, str] = {}
    shown_messages: set[str] = set()
    shown_alerts: set[str] = set()
    while True:
        progress = http.get(f"{args.api}/api/runs/{workflow_id}", headers=staff)
        if progress.status_code == 404:  # not projected yet
            time.sleep(0.5)
            continue
        run: dict[str, Any] = progress.raise_for_status().json()
        for step in run["steps"]:
            if seen.get(step["step_id"]) != step["status"]:
                seen[step["step_id"]] = step["status"]
                say(f"{step['title']}: {step['status']}")
                if args.auto and step["action_type"] == "staff_task" and step["status"] == "sent":
                    http.post(
                        f"{args.api}/api/tasks/{step['task_id']}/complete",
                        json={"outcome": "completed", "reason": "已电话随访，患者体温已正常"},
                        headers=staff,
                    ).raise_for_status()
                    say("The nurse phones the patient and records the outcome")
        messages = http.get(
            f"{args.api}/api/messages", params={"workflow_id": workflow_id}, headers=staff
        ).json()["items"]
        for message in reversed(messages):
            if message["id"] in shown_messages or message["status"] not in SENT:
                continue
            shown_messages.add(message["id"])
            say(f"{message['channel']} to {message['recipient_masked']}: {message['body']}")
            step_id = next(
                (s["step_id"] for s in run["steps"] if s["task_id"] == message["task_id"]), None
            )
            link = next(w for w in message["body"].replace("：", " ").split() if "/p/" in w)
            if args.auto and step_id in ANSWERS:
                page = http.post(link, data=ANSWERS[step_id])
                say(f"Patient answered {step_id} on the phone page: HTTP {page.status_code}")
            else:
                say(f"Open the link on a phone (or browser) and answer: {link}")
        alerts = http.get(f"{args.api}/api/alerts", headers=staff).json()["items"]
        for alert in alerts:
            if alert["workflow_id"] == workflow_id and alert["id"] not in shown_alerts:
                shown_alerts.add(alert["id"])
                say(f"ALERT for the {alert['role']}: {alert['summary']}")
        if run["status"] in ("completed", "ended"):
            say(f"Run finished: {', '.join(f'{k} {v}' for k, v in seen.items())}")
            return 0
        time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main())
