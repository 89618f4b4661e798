"""FHIR through HTTP: a Questionnaire written outside the project is imported as a draft,
previewed as the patient's page, published and exported back equivalent; what cannot be imported
is refused whole; a patient's submitted answers are read as a QuestionnaireResponse whose photo
and signature links open for the staff member who asked."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import func, select

from core.db import transaction
from core.models import CareTask, FormResponse, FormVersion, StaffRole
from harness.staff import add_staff
from tests.api.conftest import Api, FormTask
from tests.fhir_shapes import shape
from tests.images import png

FIXTURE = Path(__file__).parents[1] / "fixtures" / "fhir" / "cardiac-follow-up.json"
FHIR = {"Content-Type": "application/fhir+json"}


def _outside() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return loaded


async def _staff(api: Api, role: StaffRole = StaffRole.CARE_MANAGER) -> dict[str, str]:
    token = await add_staff(api.sessions, role, department_code="cardiology", name="设计者")
    return {"Authorization": f"Bearer {token}"}


async def test_an_outside_questionnaire_is_imported_previewed_published_and_exported_back(
    api: Api,
) -> None:
    headers = await _staff(api)
    outside = _outside()
    imported = await api.http.post(
        "/api/forms/fhir", content=json.dumps(outside), headers={**headers, **FHIR}
    )
    assert imported.status_code == 201, imported.text
    assert (imported.json()["form_id"], imported.json()["status"]) == ("cardiac-follow-up", "draft")

    preview = await api.http.get("/api/forms/cardiac-follow-up/versions/1/preview", headers=headers)
    assert preview.status_code == 200
    for text in ("心脏术后随访问卷", "再次住院的日期", "胸痛发作的频率", "几乎每天", "kg"):
        assert text in preview.text

    draft = await api.http.get("/api/forms/cardiac-follow-up/versions/1/fhir", headers=headers)
    assert draft.headers["content-type"] == "application/fhir+json"
    assert draft.json()["status"] == "draft"
    published = await api.http.post(
        "/api/forms/cardiac-follow-up/versions/1/publish", headers=headers
    )
    assert published.status_code == 200, published.text
    exported = (
        await api.http.get("/api/forms/cardiac-follow-up/versions/1/fhir", headers=headers)
    ).json()
    assert exported["status"] == "active"
    assert exported["url"] == outside["url"]
    assert shape(exported["item"]) == shape(outside["item"])

    # Exported and imported again: the next version of the same form, the same form.
    again = await api.http.post("/api/forms/fhir", json=exported, headers=headers)
    assert again.status_code == 201, again.text
    assert again.json()["version"] == 2
    assert again.json()["body"] | {"version": 1} == imported.json()["body"]


async def test_a_questionnaire_that_cannot_be_imported_is_refused_whole(api: Api) -> None:
    headers = await _staff(api)
    nurse = await _staff(api, StaffRole.NURSE)
    before = (await api.counts(), await _versions(api))

    unsupported = _outside()
    unsupported["item"].append({"linkId": "5", "text": "血压", "type": "quantity"})
    unsupported["item"][1]["item"][0]["answerValueSet"] = "http://example.org/ValueSet/symptoms"
    refused = await api.http.post("/api/forms/fhir", json=unsupported, headers=headers)
    assert refused.status_code == 422
    assert {p["path"]: p["message"] for p in refused.json()["detail"]} == {
        "item[1].item[0].answerValueSet": "'answerValueSet' is not supported",
        "item[4].type": "items of type 'quantity' are not supported",
    }

    # Valid FHIR that is not a valid form: a choice of one option.
    lonely = _outside()
    lonely["item"][1]["item"][1]["answerOption"] = lonely["item"][1]["item"][1]["answerOption"][:1]
    incomplete = await api.http.post("/api/forms/fhir", json=lonely, headers=headers)
    assert incomplete.status_code == 422
    assert [p["path"] for p in incomplete.json()["detail"]] == ["questions[6]"]

    not_fhir = await api.http.post(
        "/api/forms/fhir", json={"resourceType": "Questionnaire", "item": "x"}, headers=headers
    )
    assert not_fhir.status_code == 422
    assert "item" in {p["path"] for p in not_fhir.json()["detail"]}

    library = copy.deepcopy(_outside())
    library["identifier"] = [{"system": "https://carepath.dev/fhir/form-id", "value": "phq-9"}]
    assert (
        await api.http.post("/api/forms/fhir", json=library, headers=headers)
    ).status_code == 409
    assert (
        await api.http.post("/api/forms/fhir", json=_outside(), headers=nurse)
    ).status_code == 403
    assert (await api.counts(), await _versions(api)) == before


async def test_submitted_answers_are_read_as_a_questionnaire_response(
    form_task: FormTask,
) -> None:
    api = form_task.api
    signature = await form_task.upload("signature", png(), "image/png", "signature.png")
    assert signature.status_code == 201, signature.text
    reference = signature.json()["reference"]
    async with transaction(api.sessions) as session:
        session.add(
            FormResponse(
                task_id=form_task.task_id,
                workflow_id=await _workflow_of(api, form_task.task_id),
                form_id="all-question-types",
                answers={
                    "willing": ["yes"],
                    "overall": ["good"],
                    "summary": ["伤口愈合好"],
                    "sleep.waking": ["fair"],
                    "signature": [reference],
                },
                submitted_at=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
            )
        )
    headers = await _staff(api, StaffRole.NURSE)
    response = await api.http.get(
        f"/api/tasks/{form_task.task_id}/questionnaire-response", headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    body = response.json()
    assert body["resourceType"] == "QuestionnaireResponse"
    assert body["subject"]["reference"].startswith("Patient/")
    assert "张建国" not in response.text
    assert "13800138001" not in response.text
    [group] = body["item"]
    answers = {i["linkId"]: i for i in group["item"]}
    assert answers["summary"]["answer"] == [{"valueString": "伤口愈合好"}]
    assert answers["sleep"]["item"][0]["answer"][0]["valueCoding"]["code"] == "fair"

    # The signature's link opens the file, signed and expiring.
    link = answers["signature"]["answer"][0]["valueAttachment"]["url"]
    assert "sig=" in link
    assert "expires=" in link
    opened = await api.http.get(link.removeprefix(api.settings.public_base_url.rstrip("/")))
    assert opened.status_code == 200
    assert opened.headers["content-type"] == "image/png"

    elsewhere = await add_staff(
        api.sessions, StaffRole.NURSE, department_code="orthopaedics", name="骨科护士"
    )
    hidden = await api.http.get(
        f"/api/tasks/{form_task.task_id}/questionnaire-response",
        headers={"Authorization": f"Bearer {elsewhere}"},
    )
    assert hidden.status_code == 404


async def _workflow_of(api: Api, task_id: str) -> str:
    async with api.sessions() as session:
        task = await session.get(CareTask, task_id)
        assert task is not None
        return task.workflow_id


async def _versions(api: Api) -> int:
    """Form versions stored (the library's too: api.counts leaves configuration out)."""
    async with api.sessions() as session:
        return int((await session.exec(select(func.count()).select_from(FormVersion))).one())
