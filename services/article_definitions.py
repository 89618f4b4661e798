"""Health education articles as versioned data (ED-5): a team's or a person's drafts, submitted
for approval, published only when someone other than the author approves (S0), or sent back with
the reviewer's note; the platform's articles stored the same way. A pathway published later pins
the newest published version of each article it pushes; runs going keep theirs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import ArticleDocument, ArticleOwner, ArticleStatus, ArticleVersion, utcnow
from core.validation import error_path
from pathways.definition import ArticleDefinition, PathProblem
from services.staff import StaffPrincipal

LIBRARY_ACTOR = "library"
# A draft or a version sent back may change; submitted and published ones may not.
EDITABLE = (ArticleStatus.DRAFT, ArticleStatus.REJECTED)


class ArticleRejected(ValueError):
    def __init__(self, problems: list[PathProblem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


class ArticleConflict(ValueError):
    pass


def check_article(body: Mapping[str, Any]) -> tuple[ArticleDefinition | None, list[PathProblem]]:
    try:
        return ArticleDefinition.model_validate(body), []
    except ValidationError as exc:
        return None, [
            PathProblem(path=error_path(e["loc"]), message=e["msg"].removeprefix("Value error, "))
            for e in exc.errors(include_url=False)
        ]


def visible(staff: StaffPrincipal) -> Any:
    """Which articles the caller sees: the platform's, their team's (every team's for staff of
    no one department), and their own."""
    teams = (
        col(ArticleDocument.owner) == ArticleOwner.TEAM
        if staff.department_code is None
        else (col(ArticleDocument.owner) == ArticleOwner.TEAM)
        & (col(ArticleDocument.department_code) == staff.department_code)
    )
    return or_(
        col(ArticleDocument.owner) == ArticleOwner.PLATFORM,
        teams,
        (col(ArticleDocument.owner) == ArticleOwner.PERSONAL)
        & (col(ArticleDocument.owner_staff_id) == staff.id),
    )


def may_edit(document: ArticleDocument, staff: StaffPrincipal) -> str | None:
    """Why the caller may not change the article, or None."""
    if document.owner == ArticleOwner.PLATFORM:
        return "平台文章随版本发布，不能在此修改；请另存为团队或个人文章"
    if document.owner == ArticleOwner.PERSONAL and document.owner_staff_id != staff.id:
        return "个人文章只能由作者修改"
    if (
        document.owner == ArticleOwner.TEAM
        and staff.department_code is not None
        and document.department_code != staff.department_code
    ):
        return f"该文章属于{document.department_code}"
    return None


async def _next_version(session: AsyncSession, article_id: str) -> int:
    found = await session.exec(
        select(func.max(ArticleVersion.version)).where(ArticleVersion.article_id == article_id)
    )
    return int(found.one() or 0) + 1


async def create_draft(
    session: AsyncSession,
    body: Mapping[str, Any],
    staff: StaffPrincipal,
    owner: ArticleOwner,
) -> ArticleVersion:
    """A draft of a new article (the caller's team's, or their own) or the next version of one
    they may change."""
    _, problems = check_article(body)
    identity = [p for p in problems if p.path in ("id", "title")]
    if identity:
        raise ArticleRejected(identity)
    article_id = str(body["id"])
    document = await session.get(ArticleDocument, article_id, with_for_update=True)
    if document is None:
        if owner == ArticleOwner.TEAM and staff.department_code is None:
            raise ArticleConflict("没有所属科室，不能创建团队文章；请创建个人文章")
        document = ArticleDocument(
            id=article_id,
            title=str(body["title"]),
            owner=owner,
            department_code=staff.department_code if owner == ArticleOwner.TEAM else None,
            owner_staff_id=staff.id if owner == ArticleOwner.PERSONAL else None,
            created_by=staff.id,
        )
        session.add(document)
        await session.flush()
    else:
        refusal = may_edit(document, staff)
        if refusal is not None:
            raise ArticleConflict(refusal)
    draft = ArticleVersion(
        article_id=article_id,
        version=await _next_version(session, article_id),
        body=dict(body),
        created_by=staff.id,
    )
    session.add(draft)
    await session.flush()
    return draft


async def version_row(session: AsyncSession, article_id: str, version: int) -> ArticleVersion:
    found = await session.exec(
        select(ArticleVersion).where(
            ArticleVersion.article_id == article_id, ArticleVersion.version == version
        )
    )
    row = found.first()
    if row is None:
        raise LookupError(f"article {article_id} has no version {version}")
    return row


async def versions_of(session: AsyncSession, article_id: str) -> Sequence[ArticleVersion]:
    rows = await session.exec(
        select(ArticleVersion)
        .where(ArticleVersion.article_id == article_id)
        .order_by(col(ArticleVersion.version))
    )
    return rows.all()


async def update_draft(
    session: AsyncSession, article_id: str, version: int, body: Mapping[str, Any]
) -> ArticleVersion:
    row = await version_row(session, article_id, version)
    if row.status not in EDITABLE:
        raise ArticleConflict(f"第{version}版已{_STATUS_NAMES[row.status]}，不能修改")
    if body.get("id") != article_id:
        raise ArticleRejected([PathProblem(path="id", message=f"must stay '{article_id}'")])
    row.body = dict(body)
    row.status = ArticleStatus.DRAFT
    row.updated_at = utcnow()
    return row


_STATUS_NAMES: dict[str, str] = {
    ArticleStatus.DRAFT: "为草稿",
    ArticleStatus.SUBMITTED: "提交审核",
    ArticleStatus.PUBLISHED: "发布",
    ArticleStatus.REJECTED: "退回",
}


async def submit(session: AsyncSession, article_id: str, version: int) -> ArticleVersion:
    """For approval: checked whole first."""
    row = await version_row(session, article_id, version)
    if row.status not in EDITABLE:
        raise ArticleConflict(f"第{version}版已{_STATUS_NAMES[row.status]}")
    article, problems = check_article(row.body)
    if article is None:
        raise ArticleRejected(problems)
    row.status = ArticleStatus.SUBMITTED
    row.submitted_at = utcnow()
    return row


async def review(
    session: AsyncSession,
    article_id: str,
    version: int,
    reviewer: StaffPrincipal,
    *,
    approve: bool,
    note: str | None,
) -> ArticleVersion:
    """Approves (publishes) or sends back a submitted version; never its own author's."""
    document = await session.get(ArticleDocument, article_id, with_for_update=True)
    row = await version_row(session, article_id, version)
    assert document is not None
    if row.status != ArticleStatus.SUBMITTED:
        raise ArticleConflict(f"第{version}版未在待审核状态")
    if row.created_by == reviewer.id:
        raise ArticleConflict("不能审核自己撰写的文章")
    row.reviewed_by = reviewer.id
    row.reviewed_at = utcnow()
    row.review_note = note
    if not approve:
        row.status = ArticleStatus.REJECTED
        return row
    row.status = ArticleStatus.PUBLISHED
    if document.published_version is None or version > document.published_version:
        document.published_version = version
        document.title = str(row.body.get("title", document.title))
    return row


async def articles_with_version_counts(
    session: AsyncSession, staff: StaffPrincipal
) -> list[tuple[ArticleDocument, int]]:
    counts = dict(
        (
            await session.exec(
                select(ArticleVersion.article_id, func.count()).group_by(
                    col(ArticleVersion.article_id)
                )
            )
        ).all()
    )
    rows = await session.exec(
        select(ArticleDocument).where(visible(staff)).order_by(col(ArticleDocument.id))
    )
    return [(d, int(counts.get(d.id, 0))) for d in rows.all()]


async def pending_review(session: AsyncSession, staff: StaffPrincipal) -> Sequence[ArticleVersion]:
    """Versions waiting for approval that the caller may approve (not their own)."""
    rows = await session.exec(
        select(ArticleVersion)
        .join(ArticleDocument, col(ArticleDocument.id) == ArticleVersion.article_id)
        .where(
            ArticleVersion.status == ArticleStatus.SUBMITTED,
            ArticleVersion.created_by != staff.id,
            visible(staff),
        )
        .order_by(col(ArticleVersion.submitted_at))
    )
    return rows.all()


async def published_articles(session: AsyncSession) -> dict[str, ArticleDefinition]:
    """The newest published version of every article: what pathway definitions are checked
    against and pin at publication."""
    rows = await session.exec(
        select(ArticleVersion)
        .join(ArticleDocument, col(ArticleDocument.id) == ArticleVersion.article_id)
        .where(col(ArticleDocument.published_version) == ArticleVersion.version)
    )
    return {row.article_id: ArticleDefinition.model_validate(row.body) for row in rows.all()}


async def sync_library_articles(
    session: AsyncSession, articles: Mapping[str, ArticleDefinition]
) -> None:
    """Publishes each platform article that is new or changed as the next version (reviewed in
    the release, not here). Running it again changes nothing."""
    for article in articles.values():
        body = article.model_dump(mode="json", exclude_defaults=True)
        document = await session.get(ArticleDocument, article.id)
        if document is not None and document.owner != ArticleOwner.PLATFORM:
            continue  # a hospital wrote this id before a release shipped it: theirs stays
        if document is None:
            document = ArticleDocument(
                id=article.id,
                title=article.title,
                owner=ArticleOwner.PLATFORM,
                created_by=LIBRARY_ACTOR,
            )
            session.add(document)
            await session.flush()
        if document.published_version is not None:
            newest = await version_row(session, article.id, document.published_version)
            if ArticleDefinition.model_validate(newest.body) == article:
                continue
        version = await _next_version(session, article.id)
        session.add(
            ArticleVersion(
                article_id=article.id,
                version=version,
                status=ArticleStatus.PUBLISHED,
                body=body,
                created_by=LIBRARY_ACTOR,
                reviewed_by=LIBRARY_ACTOR,
                reviewed_at=utcnow(),
            )
        )
        document.published_version = version
        document.title = article.title
        await session.flush()
