"""Pathway definitions as versioned data (the designer's work): drafts, validation with every
problem named by path, immutable published versions with their forms and articles pinned, the
live version for new runs, and the library shipped with the platform kept in sync."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import serialise
from core.models import DefinitionStatus, Pathway, PathwayVersion, utcnow
from pathways.definition import (
    ArticleDefinition,
    PathProblem,
    PathwaySnapshot,
    validate_definition,
)
from pathways.form_definition import FormDefinition
from pathways.library import Library, snapshot
from services.article_definitions import published_articles, sync_library_articles
from services.form_definitions import published_forms, sync_library_forms


class DefinitionRejected(ValueError):
    def __init__(self, problems: list[PathProblem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


class DefinitionConflict(ValueError):
    pass


@dataclass(frozen=True)
class Published:
    """The newest published version of every form and article: what a pathway definition is
    checked against, and pins at publication."""

    forms: Mapping[str, FormDefinition]
    articles: Mapping[str, ArticleDefinition]

    @classmethod
    async def load(cls, session: AsyncSession) -> Published:
        return cls(await published_forms(session), await published_articles(session))


@dataclass(frozen=True)
class DesignContext:
    """What a pathway definition is checked against besides the published forms and articles
    (which are data: see Published)."""

    library: Library
    templates: set[str]

    def validate(self, body: dict[str, Any], published: Published) -> list[PathProblem]:
        _, problems = validate_definition(
            body, forms=published.forms, articles=published.articles, templates=self.templates
        )
        return problems

    def snapshot(self, body: dict[str, Any], version: int, published: Published) -> PathwaySnapshot:
        definition, problems = validate_definition(
            body, forms=published.forms, articles=published.articles, templates=self.templates
        )
        if definition is None or problems:
            raise DefinitionRejected(problems)
        return snapshot(definition, version, published.forms, published.articles)


async def _next_version(session: AsyncSession, pathway_id: str) -> int:
    found = await session.exec(
        select(func.max(PathwayVersion.version)).where(PathwayVersion.pathway_id == pathway_id)
    )
    return int(found.one() or 0) + 1


async def create_draft(
    session: AsyncSession, ctx: DesignContext, body: dict[str, Any], actor: str
) -> PathwayVersion:
    """A new draft: a new pathway, or the next version of an existing one."""
    pathway_id = str(body.get("id", ""))
    nothing = Published(forms={}, articles={})
    problems = [p for p in ctx.validate(body, nothing) if p.path in ("id", "name", "kind")]
    if problems:
        raise DefinitionRejected(problems)
    pathway = await session.get(Pathway, pathway_id)
    if pathway is None:
        pathway = Pathway(id=pathway_id, name=str(body["name"]), kind=str(body["kind"]))
        session.add(pathway)
        await session.flush()
    draft = PathwayVersion(
        pathway_id=pathway_id,
        version=await _next_version(session, pathway_id),
        body=body,
        created_by=actor,
    )
    session.add(draft)
    await session.flush()
    return draft


async def version_row(session: AsyncSession, pathway_id: str, version: int) -> PathwayVersion:
    found = await session.exec(
        select(PathwayVersion).where(
            PathwayVersion.pathway_id == pathway_id, PathwayVersion.version == version
        )
    )
    row = found.first()
    if row is None:
        raise LookupError(f"pathway {pathway_id} has no version {version}")
    return row


async def pathways_with_version_counts(session: AsyncSession) -> list[tuple[Pathway, int]]:
    """Every pathway by id, with how many versions it has (drafts and published)."""
    counts = dict(
        (
            await session.exec(
                select(PathwayVersion.pathway_id, func.count()).group_by(
                    col(PathwayVersion.pathway_id)
                )
            )
        ).all()
    )
    rows = await session.exec(select(Pathway).order_by(col(Pathway.id)))
    return [(p, int(counts.get(p.id, 0))) for p in rows.all()]


async def version_count(session: AsyncSession, pathway_id: str) -> int:
    count = (
        await session.exec(select(func.count()).where(PathwayVersion.pathway_id == pathway_id))
    ).one()
    return int(count)


async def versions_of(session: AsyncSession, pathway_id: str) -> Sequence[PathwayVersion]:
    """A pathway's versions, oldest first."""
    rows = await session.exec(
        select(PathwayVersion)
        .where(PathwayVersion.pathway_id == pathway_id)
        .order_by(col(PathwayVersion.version))
    )
    return rows.all()


async def update_draft(
    session: AsyncSession, pathway_id: str, version: int, body: dict[str, Any]
) -> PathwayVersion:
    row = await version_row(session, pathway_id, version)
    if row.status != DefinitionStatus.DRAFT:
        raise DefinitionConflict(f"version {version} is published and cannot change")
    if body.get("id") != pathway_id:
        raise DefinitionRejected([PathProblem(path="id", message=f"must stay '{pathway_id}'")])
    row.body = body
    row.updated_at = utcnow()
    return row


async def publish(
    session: AsyncSession, ctx: DesignContext, pathway_id: str, version: int, actor: str
) -> PathwayVersion:
    """Publishes a draft for good, pinning the newest published version of each form it uses."""
    row = await version_row(session, pathway_id, version)
    if row.status == DefinitionStatus.PUBLISHED:
        raise DefinitionConflict(f"version {version} is already published")
    published = await Published.load(session)
    pinned = ctx.snapshot(row.body, version, published)  # raises DefinitionRejected, every problem
    row.status = DefinitionStatus.PUBLISHED
    row.snapshot = pinned.model_dump(mode="json")
    row.published_by = actor
    row.published_at = utcnow()
    pathway = await session.get(Pathway, pathway_id)
    assert pathway is not None
    pathway.name = pinned.definition.name
    if pathway.live_version is None:
        pathway.live_version = version
    return row


async def set_live(session: AsyncSession, pathway_id: str, version: int) -> Pathway:
    row = await version_row(session, pathway_id, version)
    if row.status != DefinitionStatus.PUBLISHED:
        raise DefinitionConflict("only a published version can be live")
    pathway = await session.get(Pathway, pathway_id)
    assert pathway is not None
    pathway.live_version = version
    return pathway


Availability = Literal["active", "suspended", "retired"]
# Each change of availability: where it leads, what it may start from, its audit action.
AVAILABILITY_CHANGES: dict[str, tuple[Availability, tuple[str, ...], str]] = {
    "suspend": ("suspended", ("active",), "pathway.suspended"),
    "resume": ("active", ("suspended",), "pathway.resumed"),
    "retire": ("retired", ("active", "suspended"), "pathway.retired"),
}


async def change_availability(session: AsyncSession, pathway_id: str, change: str) -> Pathway:
    """Suspends, resumes or retires a pathway: whether new runs start. Runs already started
    are not touched. Retiring is for good; a suspended pathway resumes."""
    pathway = await session.get(Pathway, pathway_id, with_for_update=True)
    if pathway is None:
        raise LookupError(pathway_id)
    target, allowed_from, _ = AVAILABILITY_CHANGES[change]
    if pathway.availability not in allowed_from:
        raise DefinitionConflict(f"the pathway is {pathway.availability}; it cannot {change}")
    pathway.availability = target
    return pathway


def ensure_enrolling(pathway: Pathway) -> None:
    """Raises DefinitionConflict unless the pathway takes new runs."""
    if pathway.availability != "active":
        raise DefinitionConflict(f"pathway '{pathway.id}' is {pathway.availability}: no new runs")


async def published_snapshot(
    session: AsyncSession, pathway_id: str, version: int
) -> PathwaySnapshot:
    row = await version_row(session, pathway_id, version)
    if row.status != DefinitionStatus.PUBLISHED or row.snapshot is None:
        raise DefinitionConflict(f"version {version} of {pathway_id} is not published")
    return PathwaySnapshot.model_validate(row.snapshot)


# Validated snapshots by version row. Publishing sets a version's snapshot once and nothing
# changes it after, so a process validates each once: every HIS event is matched against every
# live pathway, and reading and validating their snapshots was the largest part of an event's own
# work. A few hundred versions at most are ever live; the bound only guards against surprises.
_SNAPSHOTS: dict[str, PathwaySnapshot] = {}
_SNAPSHOTS_KEPT = 1024


async def live_snapshots(session: AsyncSession) -> list[PathwaySnapshot]:
    """The version every active pathway starts new runs on: what HIS events are matched
    against (suspended and retired pathways enrol nobody)."""
    live = await session.exec(
        select(PathwayVersion.id)
        .join(Pathway, col(Pathway.id) == PathwayVersion.pathway_id)
        .where(
            col(Pathway.live_version) == PathwayVersion.version,
            col(Pathway.availability) == "active",
        )
        .order_by(col(Pathway.id))
    )
    ids = list(live.all())
    missing = [version_id for version_id in ids if version_id not in _SNAPSHOTS]
    if missing:
        rows = await session.exec(
            select(PathwayVersion.id, PathwayVersion.snapshot).where(
                col(PathwayVersion.id).in_(missing)
            )
        )
        for version_id, snapshot in rows.all():
            if snapshot:
                while len(_SNAPSHOTS) >= _SNAPSHOTS_KEPT:
                    del _SNAPSHOTS[next(iter(_SNAPSHOTS))]
                _SNAPSHOTS[version_id] = PathwaySnapshot.model_validate(snapshot)
    return [_SNAPSHOTS[version_id] for version_id in ids if version_id in _SNAPSHOTS]


async def sync_library(session: AsyncSession, ctx: DesignContext, actor: str = "library") -> None:
    """Publishes the library forms and articles, then each library plan that is new or changed,
    or whose forms or articles changed, as the next version of its pathway, and makes it live if
    the live version was the library's. Running it again changes nothing; API processes starting
    together take turns (each would otherwise insert the same new rows)."""
    await serialise(session, "library-sync", sqlite_table=Pathway.__table__)  # type: ignore[attr-defined]
    await sync_library_forms(session, ctx.library.forms)
    await sync_library_articles(session, ctx.library.articles)
    published = await Published.load(session)
    for definition in ctx.library.definitions.values():
        body = definition.model_dump(mode="json", exclude_defaults=True)
        pathway = await session.get(Pathway, definition.id)
        latest = await session.exec(
            select(PathwayVersion)
            .where(
                PathwayVersion.pathway_id == definition.id,
                PathwayVersion.status == DefinitionStatus.PUBLISHED,
                PathwayVersion.created_by == actor,
            )
            .order_by(col(PathwayVersion.version).desc())
        )
        newest = latest.first()
        if (
            newest is not None
            and newest.body == body
            and newest.snapshot is not None
            # Compared as models: a field added to the language since is equal at its default.
            and PathwaySnapshot.model_validate(newest.snapshot)
            == snapshot(definition, newest.version, published.forms, published.articles)
        ):
            continue
        if pathway is None:
            pathway = Pathway(
                id=definition.id, name=definition.name, kind=definition.kind, library=True
            )
            session.add(pathway)
            await session.flush()
        version = await _next_version(session, definition.id)
        pinned = snapshot(definition, version, published.forms, published.articles)
        session.add(
            PathwayVersion(
                pathway_id=definition.id,
                version=version,
                status=DefinitionStatus.PUBLISHED,
                body=body,
                snapshot=pinned.model_dump(mode="json"),
                created_by=actor,
                published_by=actor,
                published_at=utcnow(),
            )
        )
        if pathway.live_version is None or (newest and pathway.live_version == newest.version):
            pathway.live_version = version
        await session.flush()
