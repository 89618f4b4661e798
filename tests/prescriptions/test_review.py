"""The review process under the time-skipping server: pharmacist decisions, the system's own
conclusion at the deadline, rejection and revision, and every conclusion called back to the HIS.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from core.models import OutboundMessage, Prescription
from harness.prescriptions import UNSAFE_ITEMS, prescription
from harness.waiting import eventually
from simulators.his.app import Faults as HisFaults
from tests.prescriptions.conftest import RxStack, RxStackFactory
from workers.factory import Queues, WorkerDeps, build_workers, running_workers

DEADLINE = timedelta(seconds=120)


async def test_pharmacist_approves_within_the_deadline(
    isolated_time_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with rx_stack(isolated_time_env) as stack, stack.workers():
        body = prescription()
        submitted = await stack.submit(body)
        assert submitted.status_code == 202, submitted.text
        accepted = submitted.json()
        assert accepted["findings"] == []
        await stack.wait_callbacks(body["prescription_no"], 1)

        queue = await stack.http.get("/api/prescriptions/review-queue", headers=stack.auth())
        [waiting] = queue.json()
        assert waiting["prescription_no"] == body["prescription_no"]
        assert 0 < waiting["seconds_left"] <= 120

        decided = await stack.decide(accepted["prescription_id"], round=1, outcome="approve")
        assert decided.status_code == 200, decided.text
        conclusion = decided.json()
        callbacks = await stack.wait_callbacks(body["prescription_no"], 2)

    assert conclusion["outcome"] == "approved"
    assert conclusion["reviewer"] != "system"
    assert conclusion["timed_out"] is False
    assert [(c["event"], c["status"]) for c in callbacks] == [
        ("round_started", "reviewing"),
        ("concluded", "approved"),
    ]
    assert callbacks[1]["reviewer"] == conclusion["reviewer"]
    row = await stack.row(accepted["prescription_id"])
    assert (row.status, row.review_outcome, row.reviewed_by) == (
        "approved",
        "approved",
        conclusion["reviewer"],
    )


async def test_no_decision_means_system_approval_exactly_at_the_deadline(
    isolated_time_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with rx_stack(isolated_time_env) as stack, stack.workers():
        body = prescription()
        accepted = await stack.under_review(body)
        await isolated_time_env.sleep(DEADLINE + timedelta(seconds=1))
        state = await stack.wait_status(accepted["workflow_id"], "approved")
        callbacks = await stack.wait_callbacks(body["prescription_no"], 2)

    [review] = state.rounds
    assert review.conclusion is not None
    assert review.conclusion.reviewer == "system"
    assert review.conclusion.reason == "timeout"
    assert review.conclusion.timed_out
    assert review.deadline_at - review.started_at == DEADLINE
    assert review.conclusion.at == review.deadline_at
    assert callbacks[-1]["event"] == "concluded"
    assert callbacks[-1]["reviewer"] == "system"
    assert callbacks[-1]["reason"] == "timeout"
    row = await stack.row(accepted["prescription_id"])
    assert row.review_timed_out
    assert row.reviewed_at == review.deadline_at


async def test_the_system_approval_reaches_the_his_while_its_database_write_waits(
    isolated_time_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with rx_stack(isolated_time_env) as stack, stack.workers():
        body = prescription()
        accepted = await stack.under_review(body)
        # Someone holds the prescription's row (a long report, a slow disk) across the deadline.
        async with stack.sessions() as holder, holder.begin():
            await holder.exec(
                select(Prescription)
                .where(Prescription.id == accepted["prescription_id"])
                .with_for_update()
            )
            await isolated_time_env.sleep(DEADLINE + timedelta(seconds=1))
            callbacks = await stack.wait_callbacks(body["prescription_no"], 2)
            assert [(c["event"], c["status"]) for c in callbacks[-1:]] == [
                ("concluded", "approved")
            ]
            assert (await stack.row(accepted["prescription_id"])).status == "reviewing"

        async def recorded() -> bool:
            return (await stack.row(accepted["prescription_id"])).status == "approved"

        await eventually(recorded, within=60, what="the approval recorded")


async def test_the_system_approval_is_not_held_up_by_the_platforms_other_work(
    isolated_time_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with rx_stack(isolated_time_env) as stack:
        deps = WorkerDeps.from_settings(stack.settings, stack.sessions)
        queue, client = stack.settings.temporal_task_queue, isolated_time_env.client
        review = build_workers(client, queue, deps, queues=Queues.REVIEW)
        main = build_workers(client, queue, deps, queues=Queues.MAIN)
        body = prescription()
        try:
            # The main queues' process is stalled (here: not running at all) across the deadline.
            async with running_workers(review):
                accepted = await stack.under_review(body)
                await isolated_time_env.sleep(DEADLINE + timedelta(seconds=1))
                callbacks = await stack.wait_callbacks(body["prescription_no"], 2)
                assert [(c["event"], c["status"], c["reviewer"]) for c in callbacks] == [
                    ("round_started", "reviewing", None),
                    ("concluded", "approved", "system"),
                ]
                assert (await stack.row(accepted["prescription_id"])).status == "approved"
                assert await notices(stack, accepted["prescription_id"]) == []

                # The patient's notice waited for the main queue, and goes out once it moves.
                async with running_workers(main):

                    async def sent() -> bool:
                        return await notices(stack, accepted["prescription_id"]) == ["sent"]

                    await eventually(sent, within=30, what="the approval notice sent, once")
        finally:
            await deps.close()


async def notices(stack: RxStack, prescription_id: str) -> list[str]:
    """Statuses of the approval notices sent to the prescription's patient."""
    row = await stack.row(prescription_id)
    async with stack.sessions() as session:
        found = await session.exec(
            select(OutboundMessage.status).where(
                OutboundMessage.patient_id == row.patient_id,
                OutboundMessage.template == "prescription_status",
            )
        )
        return list(found.all())


async def test_findings_and_no_decision_go_back_to_the_doctor(
    isolated_time_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with rx_stack(isolated_time_env) as stack, stack.workers():
        body = prescription(items=UNSAFE_ITEMS)
        accepted = (await stack.submit(body)).json()
        assert [f["code"] for f in accepted["findings"]] == ["eighteen_antagonism"]
        await stack.wait_callbacks(body["prescription_no"], 1)
        await isolated_time_env.sleep(DEADLINE + timedelta(seconds=1))
        state = await stack.wait_status(accepted["workflow_id"], "returned")
        callbacks = await stack.wait_callbacks(body["prescription_no"], 2)

    conclusion = state.rounds[0].conclusion
    assert conclusion is not None
    assert (conclusion.outcome, conclusion.reviewer, conclusion.timed_out) == (
        "rejected",
        "system",
        True,
    )
    assert "十八反" in conclusion.reason
    assert "制附子" in conclusion.reason
    assert callbacks[-1]["status"] == "returned"
    assert callbacks[-1]["findings"][0]["rule"].startswith("十八反")


async def test_hospital_may_keep_unsafe_prescriptions_for_a_pharmacist(
    isolated_time_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with (
        rx_stack(isolated_time_env, on_timeout_with_findings="keep_waiting") as stack,
        stack.workers(),
    ):
        body = prescription(items=UNSAFE_ITEMS)
        accepted = await stack.under_review(body)
        await isolated_time_env.sleep(DEADLINE + timedelta(minutes=5))
        still = await stack.state(accepted["workflow_id"])
        assert still.status == "reviewing"
        detail = await stack.http.get(
            f"/api/prescriptions/{accepted['prescription_id']}", headers=stack.auth()
        )
        assert "review_overdue" in [e["kind"] for e in detail.json()["events"]]
        late = await stack.decide(
            accepted["prescription_id"], round=1, outcome="reject", reason="附子与半夏相反，请修改"
        )
        assert late.status_code == 200, late.text
        state = await stack.wait_status(accepted["workflow_id"], "returned")

    assert state.rounds[0].conclusion is not None
    assert state.rounds[0].conclusion.reviewer != "system"
    row = await stack.row(accepted["prescription_id"])
    assert row.review_reason == "附子与半夏相反，请修改"


async def test_reject_edit_review_again_approve(
    isolated_time_env: WorkflowEnvironment,
    rx_stack: RxStackFactory,
    record_history: Any,
) -> None:
    async with rx_stack(isolated_time_env) as stack, stack.workers():
        body = prescription(items=UNSAFE_ITEMS)
        number = body["prescription_no"]
        accepted = (await stack.submit(body)).json()
        rx_id, workflow_id = accepted["prescription_id"], accepted["workflow_id"]
        await stack.wait_callbacks(number, 1)

        no_reason = await stack.decide(rx_id, round=1, outcome="reject")
        assert no_reason.status_code == 422
        rejected = await stack.decide(rx_id, round=1, outcome="reject", reason="十八反：附子与半夏")
        assert rejected.status_code == 200
        again = await stack.decide(rx_id, round=1, outcome="approve")
        assert again.status_code == 409
        assert "第1轮" in again.json()["detail"] or "不在审方中" in again.json()["detail"]

        revised = await stack.change(
            number,
            "revision",
            doctor_id="D100",
            diagnosis=body["diagnosis"],
            doses=7,
            items=[{"herb": "茯苓", "dose_g": 12}, {"herb": "法半夏", "dose_g": 9}],
        )
        assert revised.status_code == 200, revised.text
        assert revised.json()["round"] == 2
        stale = await stack.decide(rx_id, round=1, outcome="approve")
        assert stale.status_code == 409
        approved = await stack.decide(rx_id, round=2, outcome="approve")
        assert approved.status_code == 200
        state = await stack.wait_status(workflow_id, "approved")
        callbacks = await stack.wait_callbacks(number, 4)
        await record_history(
            isolated_time_env.client.get_workflow_handle(workflow_id), "prescription_v2_revised"
        )

    assert [r.number for r in state.rounds] == [1, 2]
    first, second = state.rounds
    assert first.findings
    assert not second.findings
    assert first.conclusion is not None
    assert second.started_at >= first.conclusion.at
    assert second.deadline_at - second.started_at == DEADLINE
    assert [(c["event"], c["status"], c["round"]) for c in callbacks] == [
        ("round_started", "reviewing", 1),
        ("concluded", "returned", 1),
        ("round_started", "reviewing", 2),
        ("concluded", "approved", 2),
    ]


async def test_doctor_cancels_a_returned_prescription(
    isolated_time_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with rx_stack(isolated_time_env) as stack, stack.workers():
        body = prescription(items=UNSAFE_ITEMS)
        accepted = await stack.under_review(body)
        rejected = await stack.decide(
            accepted["prescription_id"], round=1, outcome="reject", reason="相反"
        )
        assert rejected.status_code == 200, rejected.text
        await stack.wait_status(accepted["workflow_id"], "returned")
        cancelled = await stack.change(body["prescription_no"], "cancellation", reason="改开西药")
        assert cancelled.status_code == 200, cancelled.text
        result = await isolated_time_env.client.get_workflow_handle(
            accepted["workflow_id"]
        ).result()

    assert result["status"] == "cancelled"
    assert (await stack.row(accepted["prescription_id"])).status == "cancelled"


async def test_a_failing_his_never_holds_up_the_review(
    isolated_time_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with rx_stack(isolated_time_env) as stack, stack.workers():
        stack.his.faults = HisFaults(callback_status=503, callback_count=5)
        body = prescription()
        accepted = (await stack.submit(body)).json()

        async def round_started() -> bool:
            return (await stack.state(accepted["workflow_id"])).round == 1

        await eventually(round_started, what="the first round")
        decided = await stack.decide(accepted["prescription_id"], round=1, outcome="approve")
        # The review concluded while the HIS was still refusing our callbacks.
        assert decided.status_code == 200
        assert (await stack.state(accepted["workflow_id"])).status == "approved"
        # Skip the callbacks' retry backoff (1, 2, 4, 8, 16 s) instead of waiting it out.
        await isolated_time_env.sleep(timedelta(minutes=2))
        callbacks = await stack.wait_callbacks(body["prescription_no"], 2)

    assert [c["event"] for c in callbacks] == ["round_started", "concluded"]
    assert stack.his.callback_attempts >= 7  # five refusals, then both delivered
