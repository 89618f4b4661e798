"""An answered occurrence as the pathway contracts carry it: the occurrence closed with its
findings, score and risk level, and the alerts fired for staff.

Pure: the evaluation itself is the domain's (pathways/evaluation.py); this only puts it in the
contract types the workflow projects and records.
"""

from __future__ import annotations

from datetime import datetime

from contracts.pathway import FiredAlert, Occurrence
from contracts.runs import FindingRecord
from pathways.evaluation import Evaluation


def answered_occurrence(
    occurrence: Occurrence, evaluation: Evaluation, *, answered_at: datetime, closed_at: datetime
) -> Occurrence:
    """The occurrence closed as completed, or abnormal, with what its answers showed."""
    findings = [
        FindingRecord(question_id=f.question_id, question=f.question, value=f.value, label=f.label)
        for f in evaluation.findings
    ]
    return occurrence.model_copy(
        update={
            "status": "abnormal" if evaluation.abnormal else "completed",
            "answered_at": answered_at,
            "closed_at": closed_at,
            "findings": findings,
            "score": evaluation.score,
            "risk_level": evaluation.risk_level,
        }
    )


def fired_alerts(evaluation: Evaluation) -> list[FiredAlert]:
    return [
        FiredAlert(rule=a.rule, level=a.level, roles=list(a.roles), message=a.message)
        for a in evaluation.alerts
    ]
