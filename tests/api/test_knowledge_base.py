"""The knowledge base (ED-5, S0): a nurse writes a team article, submits it, cannot approve it
herself; the care manager sends it back with a note, the nurse fixes it, the care manager
approves and it is published; a pathway published after pushes that version, a newer draft
never reaches it. Personal articles are their author's alone; platform articles are read-only."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from core.models import AuditEntry, PathwayVersion, StaffRole
from harness.staff import add_staff
from tests.api.conftest import Api

ARTICLE = {
    "id": "hf-salt",
    "title": "心衰患者如何限盐",
    "summary": "每天食盐不超过5克。",
    "body": "心力衰竭患者应限制钠盐摄入：每日食盐不超过5克，少吃咸菜、腌肉和方便面。",
}
PATHWAY = {
    "id": "hf-education",
    "name": "心衰出院宣教",
    "kind": "education",
    "plan_type": "inpatient",
    "executor_role": "nurse",
    "anchor": "discharge",
    "steps": [
        {
            "id": "salt",
            "title": "限盐宣教",
            "schedule": {"offset": {"days": 2}, "time_of_day": "10:00"},
            "action": {"type": "article", "article": "hf-salt"},
            "validity": {"days": 7},
        }
    ],
}


async def _auth(
    api: Api, role: StaffRole, name: str, department: str | None = "cardiology"
) -> dict[str, str]:
    token = await add_staff(api.sessions, role, department_code=department, name=name)
    return {"Authorization": f"Bearer {token}"}


async def test_an_article_is_published_only_once_someone_else_approves_it(api: Api) -> None:
    nurse = await _auth(api, StaffRole.NURSE, "李护士")
    manager = await _auth(api, StaffRole.CARE_MANAGER, "个案管理师")

    draft = await api.http.post("/api/articles", json={**ARTICLE, "body": ""}, headers=nurse)
    assert draft.status_code == 201, draft.text  # unfinished: a draft may be
    assert draft.json()["status"] == "draft"
    incomplete = await api.http.post("/api/articles/hf-salt/versions/1/submit", headers=nurse)
    assert incomplete.status_code == 422
    assert [p["path"] for p in incomplete.json()["detail"]] == ["body"]
    fixed = await api.http.put("/api/articles/hf-salt/versions/1", json=ARTICLE, headers=nurse)
    assert fixed.status_code == 200, fixed.text
    submitted = await api.http.post("/api/articles/hf-salt/versions/1/submit", headers=nurse)
    assert submitted.json()["status"] == "submitted"
    locked = await api.http.put("/api/articles/hf-salt/versions/1", json=ARTICLE, headers=nurse)
    assert locked.status_code == 409

    # Not published yet: a pathway cannot push it.
    pathway = await api.http.post("/api/pathways", json=PATHWAY, headers=manager)
    assert pathway.status_code == 201, pathway.text
    early = await api.http.post("/api/pathways/hf-education/versions/1/publish", headers=manager)
    assert early.status_code == 422
    assert early.json()["detail"][0]["message"] == "unknown article 'hf-salt'"

    queue = await api.http.get("/api/articles/review-queue", headers=manager)
    assert [(v["article_id"], v["version"]) for v in queue.json()] == [("hf-salt", 1)]
    no_note = await api.http.post(
        "/api/articles/hf-salt/versions/1/review", json={"approve": False}, headers=manager
    )
    assert no_note.status_code == 422
    sent_back = await api.http.post(
        "/api/articles/hf-salt/versions/1/review",
        json={"approve": False, "note": "请补充高血压患者的要求"},
        headers=manager,
    )
    assert sent_back.json()["status"] == "rejected"
    assert sent_back.json()["review_note"] == "请补充高血压患者的要求"
    revised = {**ARTICLE, "body": ARTICLE["body"] + "合并高血压者每日不超过3克。"}
    assert (
        await api.http.put("/api/articles/hf-salt/versions/1", json=revised, headers=nurse)
    ).json()["status"] == "draft"
    await api.http.post("/api/articles/hf-salt/versions/1/submit", headers=nurse)

    # The author may hold the approval permission too, and still not approve her own.
    author = await _auth(api, StaffRole.CARE_MANAGER, "另一位个案管理师")
    own = await api.http.post(
        "/api/articles", json={**ARTICLE, "id": "own-article"}, headers=author
    )
    assert own.status_code == 201
    await api.http.post("/api/articles/own-article/versions/1/submit", headers=author)
    self_approved = await api.http.post(
        "/api/articles/own-article/versions/1/review", json={"approve": True}, headers=author
    )
    assert self_approved.status_code == 409
    assert self_approved.json()["detail"] == "不能审核自己撰写的文章"

    approved = await api.http.post(
        "/api/articles/hf-salt/versions/1/review", json={"approve": True}, headers=manager
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "published"
    preview = await api.http.get("/api/articles/hf-salt/versions/1/preview", headers=nurse)
    assert "合并高血压者每日不超过3克" in preview.text

    # A second version, not yet approved, does not reach the pathway.
    await api.http.post("/api/articles", json={**ARTICLE, "body": "草稿内容"}, headers=nurse)
    published = await api.http.post(
        "/api/pathways/hf-education/versions/1/publish", headers=manager
    )
    assert published.status_code == 200, published.text
    async with api.sessions() as session:
        row = (
            await session.exec(
                select(PathwayVersion).where(PathwayVersion.pathway_id == "hf-education")
            )
        ).one()
        actions = (
            await session.exec(select(AuditEntry.action).where(AuditEntry.target_id == "hf-salt"))
        ).all()
    assert row.snapshot is not None
    assert "合并高血压者" in row.snapshot["articles"]["hf-salt"]["body"]
    assert sorted(set(actions)) == [
        "article.draft_created",
        "article.draft_edited",
        "article.published",
        "article.sent_back",
        "article.submitted",
    ]


async def test_who_sees_and_changes_which_article(api: Api) -> None:
    nurse = await _auth(api, StaffRole.NURSE, "李护士")
    colleague = await _auth(api, StaffRole.NURSE, "王护士")
    elsewhere = await _auth(api, StaffRole.NURSE, "骨科护士", "orthopaedics")
    mine: dict[str, Any] = {**ARTICLE, "id": "my-notes", "title": "我的宣教稿"}
    assert (
        await api.http.post("/api/articles?owner=personal", json=mine, headers=nurse)
    ).status_code == 201
    assert (await api.http.post("/api/articles", json=ARTICLE, headers=nurse)).status_code == 201

    def ids(response: Any) -> set[str]:
        return {a["id"] for a in response.json()}

    listed = ids(await api.http.get("/api/articles", headers=nurse))
    assert {"my-notes", "hf-salt", "chd-diet"} <= listed
    theirs = ids(await api.http.get("/api/articles", headers=colleague))
    assert "hf-salt" in theirs  # the team's
    assert "my-notes" not in theirs  # hers alone
    other = ids(await api.http.get("/api/articles", headers=elsewhere))
    assert "hf-salt" not in other
    assert "chd-diet" in other  # the platform's, for everyone

    hidden = await api.http.get("/api/articles/my-notes/versions", headers=colleague)
    assert hidden.status_code == 404
    platform = await api.http.post(
        "/api/articles", json={**ARTICLE, "id": "chd-diet"}, headers=nurse
    )
    assert platform.status_code == 409
    teammate_edit = await api.http.post("/api/articles", json=ARTICLE, headers=colleague)
    assert teammate_edit.status_code == 201  # the team's article: the next version
    assert teammate_edit.json()["version"] == 2
