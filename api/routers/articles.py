"""The knowledge base (ED-5): health education articles owned by the platform, a team or one
person, versioned; a version is written as a draft, submitted, and published only when someone
other than its author approves it, or sent back with a note. Preview as the patient reads it.
Pathways push the published versions (and track reading, as before)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlmodel import select

from api.definition_body import PROBLEMS_RESPONSE, BodyDep, ValidationOut, definition_openapi
from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, require
from api.routers.patient_pages import render_page
from api.schemas import field_error
from core.models import ArticleDocument, ArticleOwner, ArticleVersion
from core.validation import Key, Text, Version
from pathways.definition import ArticleDefinition
from services import audit
from services.article_definitions import (
    ArticleConflict,
    ArticleRejected,
    articles_with_version_counts,
    check_article,
    create_draft,
    may_edit,
    pending_review,
    review,
    submit,
    update_draft,
    version_row,
    versions_of,
    visible,
)
from services.staff import StaffPrincipal

router = APIRouter(prefix="/api/articles", tags=["knowledge base"], responses=PROBLEMS_RESPONSE)
ARTICLE_BODY = definition_openapi("article", "/api/articles/schema")
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.PATHWAYS_READ))]
AuthorDep = Annotated[StaffPrincipal, Depends(require(Permission.ARTICLES_WRITE))]
ReviewerDep = Annotated[StaffPrincipal, Depends(require(Permission.ARTICLES_APPROVE))]


class ArticleOut(BaseModel):
    id: str
    title: str
    owner: str
    department_code: str | None
    owner_staff_id: str | None
    published_version: int | None
    versions: int


class ArticleVersionOut(BaseModel):
    article_id: str
    version: int
    status: str
    created_by: str
    created_at: datetime
    submitted_at: datetime | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str | None
    body: dict[str, Any]


class ReviewIn(BaseModel):
    approve: bool
    note: Text | None = Field(default=None, max_length=500, description="required to send back")


def _out(row: ArticleVersion) -> ArticleVersionOut:
    return ArticleVersionOut.model_validate(row.model_dump())


def _rejected(exc: ArticleRejected) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, [p.model_dump() for p in exc.problems]
    )


async def _document(session: SessionDep, staff: StaffPrincipal, article_id: str) -> ArticleDocument:
    """The article, if the caller sees it (another person's is not found)."""
    found = await session.exec(
        select(ArticleDocument).where(ArticleDocument.id == article_id, visible(staff))
    )
    document = found.first()
    if document is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no article '{article_id}'")
    return document


async def _version(session: SessionDep, article_id: str, version: int) -> ArticleVersion:
    try:
        return await version_row(session, article_id, version)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


def _audit(session: SessionDep, staff: StaffPrincipal, action: str, row: ArticleVersion) -> None:
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action=f"article.{action}",
        target_type="article",
        target_id=row.article_id,
        version=row.version,
    )


@router.get("/schema", response_model=dict[str, Any])
async def schema() -> dict[str, Any]:
    """An article as JSON Schema, for editors and other systems."""
    return ArticleDefinition.model_json_schema()


@router.get("", response_model=list[ArticleOut])
async def list_articles(session: SessionDep, staff: ReaderDep) -> list[ArticleOut]:
    """The platform's articles, the caller's team's and their own."""
    return [
        ArticleOut.model_validate({**d.model_dump(), "versions": count})
        for d, count in await articles_with_version_counts(session, staff)
    ]


@router.get("/review-queue", response_model=list[ArticleVersionOut])
async def review_queue(session: SessionDep, staff: ReviewerDep) -> list[ArticleVersionOut]:
    """Versions waiting for approval that the caller may approve (others' only)."""
    return [_out(r) for r in await pending_review(session, staff)]


@router.post("/validate", response_model=ValidationOut, openapi_extra=ARTICLE_BODY)
async def validate(body: BodyDep, _: ReaderDep) -> ValidationOut:
    problems = check_article(body)[1]
    return ValidationOut(valid=not problems, problems=problems)


@router.post(
    "",
    response_model=ArticleVersionOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=ARTICLE_BODY,
)
async def create(
    body: BodyDep,
    session: SessionDep,
    staff: AuthorDep,
    owner: Literal["team", "personal"] = "team",
) -> ArticleVersionOut:
    """A draft: of a new article (the caller's team's, or their own with owner=personal) or
    the next version of one they may change."""
    try:
        row = await create_draft(session, body, staff, ArticleOwner(owner))
    except ArticleRejected as exc:
        raise _rejected(exc) from exc
    except ArticleConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    _audit(session, staff, "draft_created", row)
    await session.commit()
    return _out(row)


@router.get("/{article_id}/versions", response_model=list[ArticleVersionOut])
async def versions(
    article_id: Key, session: SessionDep, staff: ReaderDep
) -> list[ArticleVersionOut]:
    await _document(session, staff, article_id)
    return [_out(r) for r in await versions_of(session, article_id)]


async def _editable(session: SessionDep, staff: StaffPrincipal, article_id: str) -> None:
    refusal = may_edit(await _document(session, staff, article_id), staff)
    if refusal is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, refusal)


@router.put(
    "/{article_id}/versions/{version}",
    response_model=ArticleVersionOut,
    openapi_extra=ARTICLE_BODY,
)
async def edit(
    article_id: Key, version: Version, body: BodyDep, session: SessionDep, staff: AuthorDep
) -> ArticleVersionOut:
    """A draft, or a version sent back, changes (and is a draft again)."""
    await _editable(session, staff, article_id)
    await _version(session, article_id, version)
    try:
        row = await update_draft(session, article_id, version, body)
    except ArticleRejected as exc:
        raise _rejected(exc) from exc
    except ArticleConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    _audit(session, staff, "draft_edited", row)
    await session.commit()
    return _out(row)


@router.post("/{article_id}/versions/{version}/submit", response_model=ArticleVersionOut)
async def submit_version(
    article_id: Key, version: Version, session: SessionDep, staff: AuthorDep
) -> ArticleVersionOut:
    """For approval; checked whole first."""
    await _editable(session, staff, article_id)
    await _version(session, article_id, version)
    try:
        row = await submit(session, article_id, version)
    except ArticleRejected as exc:
        raise _rejected(exc) from exc
    except ArticleConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    _audit(session, staff, "submitted", row)
    await session.commit()
    return _out(row)


@router.post("/{article_id}/versions/{version}/review", response_model=ArticleVersionOut)
async def review_version(
    article_id: Key, version: Version, body: ReviewIn, session: SessionDep, staff: ReviewerDep
) -> ArticleVersionOut:
    """Approves (publishes) a submitted version, or sends it back with a note. An author never
    approves their own."""
    await _document(session, staff, article_id)
    await _version(session, article_id, version)
    if not body.approve and not body.note:
        raise field_error(("body", "note"), "say why it is sent back")
    try:
        row = await review(
            session, article_id, version, staff, approve=body.approve, note=body.note
        )
    except ArticleConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    _audit(session, staff, "published" if body.approve else "sent_back", row)
    await session.commit()
    return _out(row)


@router.get(
    "/{article_id}/versions/{version}/preview",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "the patient's page"}},
)
async def preview(
    article_id: Key,
    version: Version,
    container: ContainerDep,
    session: SessionDep,
    staff: ReaderDep,
) -> HTMLResponse:
    """A version as the patient reads it on their phone."""
    await _document(session, staff, article_id)
    row = await _version(session, article_id, version)
    article, problems = check_article(row.body)
    if article is None:
        raise _rejected(ArticleRejected(problems))
    return render_page(container, "article.html", article=article)
