"""The form designer through HTTP: a care manager writes a form (YAML), is told every problem at
its path, previews it as the patient's phone shows it, publishes it; a pathway published after
pins that version, and a newer form version reaches only pathway versions published after it.
And the refusals: publishing twice, editing what is published, a library form, another
department's form, bad documents, all without writing anything."""

from __future__ import annotations

from typing import Any

import yaml
from sqlmodel import func, select

from core.models import AuditEntry, FormVersion, PathwayVersion, StaffRole
from harness.staff import add_staff
from tests.api.conftest import Api

FORM = """
id: heart-failure-weekly
title: 心衰患者每周自评
intro: 请根据最近一周的情况填写。
questions:
  - id: weight
    type: number
    text: 今天早晨空腹体重
    unit: kg
    minimum: 20
    maximum: 250
  - id: swelling
    type: yes_no
    text: 脚踝或小腿是否有浮肿？
  - id: swelling_since
    type: date
    text: 浮肿从哪天开始？
    show_if: "swelling == 'yes'"
  - id: breath
    type: rating
    text: 气短程度
"""

PATHWAY = {
    "id": "heart-failure-home",
    "name": "心衰居家管理",
    "kind": "followup",
    "plan_type": "inpatient",
    "executor_role": "nurse",
    "anchor": "discharge",
    "steps": [
        {
            "id": "week1",
            "title": "出院第1周自评",
            "schedule": {"offset": {"weeks": 1}, "time_of_day": "09:00"},
            "action": {"type": "form", "form": "heart-failure-weekly"},
            "validity": {"days": 3},
        }
    ],
}


async def _staff(
    api: Api, role: StaffRole, department: str | None = "cardiology"
) -> dict[str, str]:
    token = await add_staff(api.sessions, role, department_code=department, name="设计者")
    return {"Authorization": f"Bearer {token}"}


def _problems(response: Any) -> dict[str, str]:
    body = response.json()
    listed = body["problems"] if "problems" in body else body["detail"]
    return {p["path"]: p["message"] for p in listed}


async def _pinned_form_version(api: Api, pathway_id: str, version: int, form_id: str) -> int:
    async with api.sessions() as session:
        row = (
            await session.exec(
                select(PathwayVersion).where(
                    PathwayVersion.pathway_id == pathway_id, PathwayVersion.version == version
                )
            )
        ).one()
        assert row.snapshot is not None
        return int(row.snapshot["forms"][form_id]["version"])


async def test_a_care_manager_authors_a_form_that_a_new_pathway_pins(api: Api) -> None:
    headers = await _staff(api, StaffRole.CARE_MANAGER)
    yaml_headers = {**headers, "Content-Type": "application/yaml"}

    # Every problem at once, each where it is.
    checked = await api.http.post("/api/forms/validate", content=FORM, headers=yaml_headers)
    assert checked.status_code == 200
    assert checked.json()["valid"] is False
    assert _problems(checked) == {
        "questions[3]": "a rating question needs a scale: stars5, nps or pain",
    }
    body = yaml.safe_load(FORM)
    body["questions"][3]["scale"] = "stars5"
    body["questions"][2]["show_if"] = "swelling == 'yes' and breath >= 3"
    later = await api.http.post("/api/forms/validate", json=body, headers=headers)
    assert _problems(later) == {
        "questions[2].show_if": "question 'swelling_since' show_if refers to breath, "
        "which are not earlier questions"
    }

    # A draft may be unfinished; publishing it is refused with the same problems.
    draft = await api.http.post("/api/forms", json=body, headers=headers)
    assert draft.status_code == 201, draft.text
    assert draft.json()["version"] == 1
    assert draft.json()["status"] == "draft"
    refused = await api.http.post(
        "/api/forms/heart-failure-weekly/versions/1/publish", headers=headers
    )
    assert refused.status_code == 422
    assert set(_problems(refused)) == {"questions[2].show_if"}

    body["questions"][2]["show_if"] = "swelling == 'yes'"
    edited = await api.http.put(
        "/api/forms/heart-failure-weekly/versions/1", json=body, headers=headers
    )
    assert edited.status_code == 200, edited.text

    # The preview is the patient's page, with nothing to submit.
    preview = await api.http.get(
        "/api/forms/heart-failure-weekly/versions/1/preview", headers=headers
    )
    assert preview.status_code == 200
    assert preview.headers["content-type"].startswith("text/html")
    page = preview.text
    for text in ("心衰患者每周自评", "今天早晨空腹体重", "浮肿从哪天开始？", "预览", "kg"):
        assert text in page
    assert "disabled" in page.split('<button type="submit"')[1].split(">")[0]

    published = await api.http.post(
        "/api/forms/heart-failure-weekly/versions/1/publish", headers=headers
    )
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "published"

    # A pathway now finds the form, and pins the version published.
    pathway = await api.http.post("/api/pathways", json=PATHWAY, headers=headers)
    assert pathway.status_code == 201, pathway.text
    done = await api.http.post(
        "/api/pathways/heart-failure-home/versions/1/publish", headers=headers
    )
    assert done.status_code == 200, done.text
    assert await _pinned_form_version(api, "heart-failure-home", 1, "heart-failure-weekly") == 1

    # Version 2 of the form: the published pathway keeps version 1; its next version pins 2.
    body["questions"].append({"id": "note", "type": "long_text", "text": "其他不适"})
    second = await api.http.post("/api/forms", json=body, headers=headers)
    assert second.json()["version"] == 2
    await api.http.post("/api/forms/heart-failure-weekly/versions/2/publish", headers=headers)
    assert await _pinned_form_version(api, "heart-failure-home", 1, "heart-failure-weekly") == 1
    await api.http.post("/api/pathways", json=PATHWAY, headers=headers)
    await api.http.post("/api/pathways/heart-failure-home/versions/2/publish", headers=headers)
    assert await _pinned_form_version(api, "heart-failure-home", 2, "heart-failure-weekly") == 2

    listed = await api.http.get("/api/forms/heart-failure-weekly/versions", headers=headers)
    assert [(v["version"], v["status"]) for v in listed.json()] == [
        (1, "published"),
        (2, "published"),
    ]
    async with api.sessions() as session:
        actions = (
            await session.exec(
                select(AuditEntry.action).where(AuditEntry.target_id == "heart-failure-weekly")
            )
        ).all()
    assert sorted(actions) == [
        "form.draft_created",
        "form.draft_created",
        "form.draft_edited",
        "form.published",
        "form.published",
    ]


async def test_forms_are_listed_by_department_with_the_library_as_the_hospitals(api: Api) -> None:
    cardiology = await _staff(api, StaffRole.CARE_MANAGER)
    oncology = await _staff(api, StaffRole.CARE_MANAGER, "oncology")
    body = yaml.safe_load(FORM)
    body["questions"][3]["scale"] = "stars5"
    await api.http.post("/api/forms?ward=5A", json=body, headers=cardiology)
    await api.http.post(
        "/api/forms",
        json={**body, "id": "chemo-side-effects", "title": "化疗副作用"},
        headers=oncology,
    )

    everything = (await api.http.get("/api/forms", headers=cardiology)).json()
    by_id = {f["id"]: f for f in everything}
    assert by_id["phq-9"]["library"] is True
    assert by_id["phq-9"]["department_code"] is None
    assert by_id["phq-9"]["published_version"] == 1
    assert (
        by_id["heart-failure-weekly"]["department_code"],
        by_id["heart-failure-weekly"]["ward"],
    ) == (
        "cardiology",
        "5A",
    )
    assert by_id["heart-failure-weekly"]["published_version"] is None
    # The hospital's own forms come first, then each department's.
    departments = [f["department_code"] or "" for f in everything]
    assert departments == sorted(departments)

    mine = await api.http.get("/api/forms?department_code=cardiology", headers=cardiology)
    ids = {f["id"] for f in mine.json()}
    assert "heart-failure-weekly" in ids
    assert "phq-9" in ids
    assert "chemo-side-effects" not in ids


async def test_refusals_leave_nothing_written(api: Api) -> None:
    cardiology = await _staff(api, StaffRole.CARE_MANAGER)
    oncology = await _staff(api, StaffRole.CARE_MANAGER, "oncology")
    nurse = await _staff(api, StaffRole.NURSE)
    body = yaml.safe_load(FORM)
    body["questions"][3]["scale"] = "stars5"
    assert (await api.http.post("/api/forms", json=body, headers=cardiology)).status_code == 201
    before = (await api.counts(), await _versions(api))

    # Not a document, not a mapping, no id.
    bad_yaml = await api.http.post(
        "/api/forms",
        content=b"id: [unclosed",
        headers={**cardiology, "Content-Type": "application/yaml"},
    )
    assert bad_yaml.status_code == 422
    assert _problems(bad_yaml) == {"(document)": "not valid YAML"}
    listed = await api.http.post("/api/forms", json=[1, 2], headers=cardiology)
    assert _problems(listed) == {"(document)": "a definition is a mapping"}
    nameless = await api.http.post(
        "/api/forms", json={**body, "id": "Bad Id!", "title": ""}, headers=cardiology
    )
    assert nameless.status_code == 422
    assert set(_problems(nameless)) == {"id", "title"}

    # A library form changes only with a release.
    library = await api.http.post("/api/forms", json={**body, "id": "phq-9"}, headers=cardiology)
    assert library.status_code == 409
    assert "copy it under a new id" in library.json()["detail"]

    # Another department's form, or one created for another department.
    foreign = await api.http.put(
        "/api/forms/heart-failure-weekly/versions/1", json=body, headers=oncology
    )
    assert foreign.status_code == 403
    elsewhere = await api.http.post(
        "/api/forms?department_code=cardiology",
        json={**body, "id": "other-form"},
        headers=oncology,
    )
    assert elsewhere.status_code == 403
    # A nurse reads forms but does not design them.
    assert (await api.http.post("/api/forms", json=body, headers=nurse)).status_code == 403
    assert (await api.http.get("/api/forms", headers=nurse)).status_code == 200

    # Unknown form or version.
    assert (
        await api.http.get("/api/forms/none-such/versions", headers=cardiology)
    ).status_code == 404
    missing = await api.http.post(
        "/api/forms/heart-failure-weekly/versions/9/publish", headers=cardiology
    )
    assert missing.status_code == 404
    assert (await api.counts(), await _versions(api)) == before

    # Published is final: publishing again or editing is a conflict.
    await api.http.post("/api/forms/heart-failure-weekly/versions/1/publish", headers=cardiology)
    again = await api.http.post(
        "/api/forms/heart-failure-weekly/versions/1/publish", headers=cardiology
    )
    assert again.status_code == 409
    changed = await api.http.put(
        "/api/forms/heart-failure-weekly/versions/1", json=body, headers=cardiology
    )
    assert changed.status_code == 409
    renamed = await api.http.post(
        "/api/forms",
        json={**body, "id": "heart-failure-weekly", "title": "新标题"},
        headers=cardiology,
    )
    assert renamed.status_code == 201
    moved = await api.http.put(
        "/api/forms/heart-failure-weekly/versions/2",
        json={**body, "id": "another-id"},
        headers=cardiology,
    )
    assert moved.status_code == 422
    assert _problems(moved) == {"id": "must stay 'heart-failure-weekly'"}


async def _versions(api: Api) -> int:
    """Form versions stored (the library's too: api.counts leaves configuration out)."""
    async with api.sessions() as session:
        return int((await session.exec(select(func.count()).select_from(FormVersion))).one())
