"""An evaluated submission as the contracts carry it: the closed occurrence and the alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.pathway import FiredAlert, Occurrence
from contracts.runs import FindingRecord
from pathways.answers import Finding
from pathways.evaluation import Alert, Evaluation
from workflows.pathway_answers import answered_occurrence, fired_alerts

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
SENT = Occurrence(
    key="call#0",
    step_id="call",
    index=0,
    task_id="t1",
    title="随访",
    action_type="form",
    role="nurse",
    due_at=NOW - timedelta(days=1),
    plan_version=1,
    status="sent",
    sent_at=NOW - timedelta(days=1),
)


def evaluation(*, abnormal: bool, findings: list[Finding], alerts: list[Alert]) -> Evaluation:
    return Evaluation(
        findings=findings,
        values={},
        scores={"total": 7.0},
        fired=[],
        abnormal=abnormal,
        score=7.0,
        risk_level="high" if abnormal else None,
        alerts=alerts,
        cases=[],
    )


def test_an_abnormal_submission_closes_the_occurrence_abnormal() -> None:
    answered_at = NOW - timedelta(minutes=5)
    result = evaluation(
        abnormal=True, findings=[Finding("symptoms", "症状", "fever", "发热")], alerts=[]
    )
    occ = answered_occurrence(SENT, result, answered_at=answered_at, closed_at=NOW)
    assert occ == SENT.model_copy(
        update={
            "status": "abnormal",
            "answered_at": answered_at,
            "closed_at": NOW,
            "findings": [
                FindingRecord(question_id="symptoms", question="症状", value="fever", label="发热")
            ],
            "score": 7.0,
            "risk_level": "high",
        }
    )
    assert SENT.status == "sent"  # the original is left as it was


def test_a_normal_submission_completes_it() -> None:
    occ = answered_occurrence(
        SENT, evaluation(abnormal=False, findings=[], alerts=[]), answered_at=NOW, closed_at=NOW
    )
    assert (occ.status, occ.findings, occ.risk_level, occ.score) == ("completed", [], None, 7.0)


def test_alerts_become_fired_alerts_in_order() -> None:
    alerts = [
        Alert(rule=2, level="critical", roles=["doctor", "nurse"], message="高危"),
        Alert(rule=-1, level="warning", roles=["nurse"], message="异常回答"),
    ]
    assert fired_alerts(evaluation(abnormal=True, findings=[], alerts=alerts)) == [
        FiredAlert(rule=2, level="critical", roles=["doctor", "nurse"], message="高危"),
        FiredAlert(rule=-1, level="warning", roles=["nurse"], message="异常回答"),
    ]
