"""Smart satisfaction (SAT-2): the HIS event says which steps of care the visit or stay went
through, and a satisfaction question about another step is not asked (not shown, not
required, its answer not kept), while an encounter whose steps were not reported is asked
everything. The score is the mean of the questions asked."""

from __future__ import annotations

from sqlmodel import select

from core.db import transaction
from core.models import CareTask, Encounter, PathwayRun
from pathways.answers import check_answers, compute_scores
from pathways.library import load_forms
from tests.api.conftest import Api, FormTask, discharge_event

SURVEY = load_forms()["satisfaction-outpatient"]
ANSWERS = {"registration": "s4", "waiting": "s3", "doctor": "s5", "environment": "s4"}


async def _survey_task(form_task: FormTask, steps: list[str] | None) -> None:
    """The task becomes the satisfaction survey, its run's encounter with ``steps``."""
    async with transaction(form_task.api.sessions) as session:
        task = await session.get(CareTask, form_task.task_id)
        assert task is not None
        task.form_id = SURVEY.id
        run = await session.get(PathwayRun, task.workflow_id)
        assert run is not None
        run.plan_snapshot = {
            **run.plan_snapshot,
            "forms": {**run.plan_snapshot["forms"], SURVEY.id: SURVEY.model_dump(mode="json")},
        }
        encounter = (
            await session.exec(select(Encounter).where(Encounter.patient_id == task.patient_id))
        ).first()
        assert encounter is not None
        run.encounter_id = encounter.id
        encounter.care_steps = steps


async def test_questions_about_steps_the_visit_did_not_go_through_are_not_asked(
    form_task: FormTask,
) -> None:
    await _survey_task(form_task, ["registration", "laboratory"])
    page = (await form_task.api.http.get(form_task.path)).text
    assert 'id="q-laboratory"' in page
    assert 'id="q-pharmacy"' not in page  # no medicine was dispensed
    assert 'id="q-imaging"' not in page
    # Without an answer to the questions not asked, the survey goes through.
    sent = await form_task.api.http.post(form_task.path, data={**ANSWERS, "laboratory": "s2"})
    assert sent.status_code == 200, sent.text
    assert "提交成功" in sent.text


async def test_an_encounter_without_reported_steps_is_asked_everything(
    form_task: FormTask,
) -> None:
    await _survey_task(form_task, None)
    page = (await form_task.api.http.get(form_task.path)).text
    for question in ("pharmacy", "laboratory", "imaging"):
        assert f'id="q-{question}"' in page
    missing = await form_task.api.http.post(form_task.path, data=ANSWERS)
    assert missing.status_code == 422  # the pharmacy question is asked, and required


def test_the_score_is_the_mean_of_the_questions_asked() -> None:
    narrowed = SURVEY.for_care_steps(["registration"])
    assert [q.id for q in narrowed.questions] == [
        "registration",
        "waiting",
        "doctor",
        "environment",
        "comment",
    ]
    answers, errors = check_answers(narrowed, {k: [v] for k, v in ANSWERS.items()})
    assert errors == []
    # The mean of the four asked (4, 3, 5, 4), not a sum over seven.
    assert compute_scores(SURVEY, answers) == {"satisfaction": 4.0}
    assert SURVEY.for_care_steps(None) is SURVEY


async def test_the_his_event_carries_the_steps_and_unknown_ones_are_ignored(api: Api) -> None:
    event = discharge_event()
    event["encounter"]["care_steps"] = ["laboratory", "ward", "acupuncture", "laboratory"]
    response = await api.post_event(event)
    assert response.status_code == 202, response.text
    async with api.sessions() as session:
        encounter = (
            await session.exec(
                select(Encounter).where(
                    Encounter.his_encounter_id == event["encounter"]["encounter_id"]
                )
            )
        ).one()
    assert encounter.care_steps == ["laboratory", "ward"]
