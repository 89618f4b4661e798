"""Forms as versioned data (FORM-1), as pathways are: drafts in JSON or YAML, validation with
every problem at its path, immutable published versions grouped by department and ward, and the
library forms shipped with the platform stored the same way. A pathway published later pins the
newest published version of each form it uses; runs already going keep theirs until migrated."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.logs import get_logger
from core.models import DefinitionStatus, FormDocument, FormVersion, utcnow
from core.validation import error_path
from pathways.definition import PathProblem
from pathways.form_definition import FormDefinition, Question

log = get_logger(__name__)

LIBRARY_ACTOR = "library"


class FormRejected(ValueError):
    def __init__(self, problems: list[PathProblem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


class FormConflict(ValueError):
    pass


def check_form(
    body: Mapping[str, Any], version: int = 1
) -> tuple[FormDefinition | None, list[PathProblem]]:
    """The form, or None with every problem at its path. The version is the platform's to set:
    one in the body is replaced."""
    data = {**body, "version": version}
    try:
        return FormDefinition.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    if all(not e["loc"] for e in errors):
        # Every field is valid and only the checks across questions failed, which pydantic
        # reports as one message about the whole form: each is found again at its path.
        draft = FormDefinition.model_construct(
            id=data["id"],
            version=version,
            title=data["title"],
            questions=[Question.model_validate(q) for q in data["questions"]],
            scores=data.get("scores") or {},
            primary_score=data.get("primary_score"),
        )
        return None, [PathProblem(path=path, message=text) for path, text in draft.problems()]
    return None, [
        PathProblem(path=error_path(e["loc"]), message=e["msg"].removeprefix("Value error, "))
        for e in errors
    ]


def ensure_identified(body: Mapping[str, Any]) -> None:
    """Raises FormRejected unless the body says which form it is (a valid id and title)."""
    identity = [p for p in check_form(body)[1] if p.path in ("id", "title")]
    if identity:
        raise FormRejected(identity)


async def _next_version(session: AsyncSession, form_id: str) -> int:
    found = await session.exec(
        select(func.max(FormVersion.version)).where(FormVersion.form_id == form_id)
    )
    return int(found.one() or 0) + 1


async def create_draft(
    session: AsyncSession,
    body: Mapping[str, Any],
    actor: str,
    *,
    department_code: str | None,
    ward: str | None,
) -> FormVersion:
    """A new draft: a new form (in the department and ward given), or the next version of one.
    The draft may be unfinished; it must only say which form it is."""
    ensure_identified(body)
    form_id = str(body["id"])
    document = await session.get(FormDocument, form_id, with_for_update=True)
    if document is None:
        document = FormDocument(
            id=form_id,
            title=str(body["title"]),
            department_code=department_code,
            ward=ward,
            created_by=actor,
        )
        session.add(document)
        await session.flush()
    elif document.library:
        raise FormConflict(
            f"form '{form_id}' is shipped with the platform and changes only with a release; "
            "copy it under a new id to adapt it"
        )
    version = await _next_version(session, form_id)
    draft = FormVersion(
        form_id=form_id, version=version, body={**body, "version": version}, created_by=actor
    )
    session.add(draft)
    await session.flush()
    return draft


async def version_row(session: AsyncSession, form_id: str, version: int) -> FormVersion:
    found = await session.exec(
        select(FormVersion).where(FormVersion.form_id == form_id, FormVersion.version == version)
    )
    row = found.first()
    if row is None:
        raise LookupError(f"form {form_id} has no version {version}")
    return row


async def versions_of(session: AsyncSession, form_id: str) -> Sequence[FormVersion]:
    """A form's versions, oldest first."""
    rows = await session.exec(
        select(FormVersion).where(FormVersion.form_id == form_id).order_by(col(FormVersion.version))
    )
    return rows.all()


async def update_draft(
    session: AsyncSession, form_id: str, version: int, body: Mapping[str, Any]
) -> FormVersion:
    row = await version_row(session, form_id, version)
    if row.status != DefinitionStatus.DRAFT:
        raise FormConflict(f"version {version} is published and cannot change")
    if body.get("id") != form_id:
        raise FormRejected([PathProblem(path="id", message=f"must stay '{form_id}'")])
    row.body = {**body, "version": version}
    row.updated_at = utcnow()
    return row


async def publish(session: AsyncSession, form_id: str, version: int, actor: str) -> FormVersion:
    """Publishes a draft for good: from now on a pathway published with this form pins it."""
    document = await session.get(FormDocument, form_id, with_for_update=True)
    row = await version_row(session, form_id, version)
    assert document is not None
    if row.status == DefinitionStatus.PUBLISHED:
        raise FormConflict(f"version {version} is already published")
    form, problems = check_form(row.body, version)
    if form is None:
        raise FormRejected(problems)
    row.status = DefinitionStatus.PUBLISHED
    row.published_by = actor
    row.published_at = utcnow()
    if document.published_version is None or version > document.published_version:
        document.published_version = version
        document.title = form.title
    return row


async def forms_with_version_counts(
    session: AsyncSession, department_code: str | None = None
) -> list[tuple[FormDocument, int]]:
    """Forms by department, ward and id (hospital-wide ones first), each with how many
    versions it has; only one department's and the hospital-wide ones if a department is
    given."""
    counts = dict(
        (
            await session.exec(
                select(FormVersion.form_id, func.count()).group_by(col(FormVersion.form_id))
            )
        ).all()
    )
    query = select(FormDocument)
    if department_code is not None:
        query = query.where(
            (col(FormDocument.department_code) == department_code)
            | col(FormDocument.department_code).is_(None)
        )
    rows = await session.exec(
        query.order_by(
            func.coalesce(FormDocument.department_code, ""),
            func.coalesce(FormDocument.ward, ""),
            col(FormDocument.id),
        )
    )
    return [(d, int(counts.get(d.id, 0))) for d in rows.all()]


async def published_forms(session: AsyncSession) -> dict[str, FormDefinition]:
    """The newest published version of every form, authored or shipped: what pathway
    definitions are checked against and pin at publication."""
    rows = await session.exec(
        select(FormVersion)
        .join(FormDocument, col(FormDocument.id) == FormVersion.form_id)
        .where(col(FormDocument.published_version) == FormVersion.version)
    )
    return {row.form_id: FormDefinition.model_validate(row.body) for row in rows.all()}


async def sync_library_forms(
    session: AsyncSession, forms: Mapping[str, FormDefinition]
) -> dict[str, FormDefinition]:
    """Publishes each library form that is new or changed as the next version of its form
    (running it again changes nothing). The library forms as stored, with their versions."""
    stored: dict[str, FormDefinition] = {}
    for form in forms.values():
        body = form.model_dump(mode="json", exclude_defaults=True)
        document = await session.get(FormDocument, form.id)
        if document is not None and not document.library:
            # A hospital authored this id before a release shipped it: theirs stays.
            log.warning("library form shadowed by an authored form", form_id=form.id)
            continue
        if document is None:
            document = FormDocument(
                id=form.id, title=form.title, library=True, created_by=LIBRARY_ACTOR
            )
            session.add(document)
            await session.flush()
        newest = (
            await version_row(session, form.id, document.published_version)
            if document.published_version is not None
            else None
        )
        if newest is not None:
            current = FormDefinition.model_validate(newest.body)
            if current == form.model_copy(update={"version": current.version}):
                stored[form.id] = current
                continue
        version = await _next_version(session, form.id)
        row = FormVersion(
            form_id=form.id,
            version=version,
            status=DefinitionStatus.PUBLISHED,
            body={**body, "version": version},
            created_by=LIBRARY_ACTOR,
            published_by=LIBRARY_ACTOR,
            published_at=utcnow(),
        )
        session.add(row)
        document.published_version = version
        document.title = form.title
        await session.flush()
        stored[form.id] = FormDefinition.model_validate(row.body)
    return stored
