"""The form designer (FORM-1..3): drafts in JSON or YAML, validation with every problem at its
path, a preview as the patient's phone will show it, publication (immutable), versions, forms
grouped by department and ward. The library forms shipped with the platform are listed and
pinned the same way, and are read-only here."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from api.definition_body import PROBLEMS_RESPONSE, BodyDep, ValidationOut, definition_openapi
from api.deps import ContainerDep, SessionDep
from api.form_view import form_context
from api.permissions import Permission, require
from api.routers.patient_pages import render_page
from core.models import DefinitionStatus, FormDocument, FormVersion
from core.validation import Key, Version
from integrations.fhir.questionnaire_export import to_questionnaire
from integrations.fhir.questionnaire_import import QuestionnaireRejected, from_questionnaire
from pathways.form_definition import FormDefinition
from services import audit
from services.form_definitions import (
    FormConflict,
    FormRejected,
    check_form,
    create_draft,
    ensure_identified,
    forms_with_version_counts,
    publish,
    update_draft,
    version_row,
    versions_of,
)
from services.staff import StaffPrincipal

router = APIRouter(prefix="/api/forms", tags=["form designer"], responses=PROBLEMS_RESPONSE)
FORM_BODY = definition_openapi("form", "/api/forms/schema")
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.PATHWAYS_READ))]
DesignerDep = Annotated[StaffPrincipal, Depends(require(Permission.PATHWAYS_DESIGN))]
DepartmentCode = Annotated[
    str | None, Query(min_length=1, max_length=32, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class FormOut(BaseModel):
    id: str
    title: str
    department_code: str | None = Field(description="None: the whole hospital's")
    ward: str | None
    published_version: int | None
    library: bool
    versions: int


class FormVersionOut(BaseModel):
    form_id: str
    version: int
    status: str
    created_by: str
    created_at: datetime
    published_at: datetime | None
    body: dict[str, Any]


def _rejected(exc: FormRejected) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, [p.model_dump() for p in exc.problems]
    )


def _version_out(row: FormVersion) -> FormVersionOut:
    return FormVersionOut.model_validate(row.model_dump())


async def _document(session: SessionDep, form_id: str) -> FormDocument:
    document = await session.get(FormDocument, form_id)
    if document is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no form '{form_id}'")
    return document


def _ensure_editable(document: FormDocument, staff: StaffPrincipal) -> None:
    """Library forms change only with a release. Staff of a department change their
    department's forms; the hospital's own forms are changed by staff of no one department."""
    if document.library:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"form '{document.id}' is shipped with the platform and changes only with a release",
        )
    if staff.department_code is not None and document.department_code != staff.department_code:
        owner = document.department_code or "全院"
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"form '{document.id}' belongs to {owner}")


async def _version(session: SessionDep, form_id: str, version: int) -> FormVersion:
    try:
        return await version_row(session, form_id, version)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


def _preview(container: ContainerDep, form: FormDefinition) -> HTMLResponse:
    return render_page(
        container,
        "form.html",
        valid_until=None,
        **form_context(form, {}, [], preview=True),
    )


@router.get("/schema", response_model=dict[str, Any])
async def schema() -> dict[str, Any]:
    """The form language as JSON Schema, for editors and other systems."""
    return FormDefinition.model_json_schema()


@router.post("/validate", response_model=ValidationOut, openapi_extra=FORM_BODY)
async def validate(body: BodyDep, _: ReaderDep) -> ValidationOut:
    problems = check_form(body)[1]
    return ValidationOut(valid=not problems, problems=problems)


@router.post(
    "/preview",
    response_class=HTMLResponse,
    openapi_extra=FORM_BODY,
    responses={200: {"content": {"text/html": {}}, "description": "the patient's page"}},
)
async def preview_body(body: BodyDep, container: ContainerDep, _: ReaderDep) -> HTMLResponse:
    """A definition not yet saved, as the patient's phone will show it (nothing is stored)."""
    form, problems = check_form(body)
    if form is None:
        raise _rejected(FormRejected(problems))
    return _preview(container, form)


@router.get("", response_model=list[FormOut])
async def list_forms(
    session: SessionDep,
    _: ReaderDep,
    department_code: DepartmentCode = None,
) -> list[FormOut]:
    """Every form by department, ward and id (the hospital's own first); with a department,
    that department's and the hospital's own."""
    return [
        FormOut.model_validate({**d.model_dump(), "versions": count})
        for d, count in await forms_with_version_counts(session, department_code)
    ]


@router.post(
    "",
    response_model=FormVersionOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=FORM_BODY,
)
async def create(
    body: BodyDep,
    session: SessionDep,
    staff: DesignerDep,
    department_code: DepartmentCode = None,
    ward: DepartmentCode = None,
) -> FormVersionOut:
    """A draft: of a new form (in the caller's department unless one is named) or the next
    version of an existing one. It may be unfinished; publishing checks it whole."""
    department = department_code or staff.department_code
    if staff.department_code is not None and department != staff.department_code:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"forms can only be created in {staff.department_code}"
        )
    try:
        ensure_identified(body)
    except FormRejected as exc:
        raise _rejected(exc) from exc
    existing = await session.get(FormDocument, body["id"])
    if existing is not None and not existing.library:  # a library id: create_draft says why not
        _ensure_editable(existing, staff)
    try:
        draft = await create_draft(session, body, staff.id, department_code=department, ward=ward)
    except FormConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except FormRejected as exc:
        raise _rejected(exc) from exc
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="form.draft_created",
        target_type="form",
        target_id=draft.form_id,
        version=draft.version,
    )
    await session.commit()
    return _version_out(draft)


@router.get("/{form_id}/versions", response_model=list[FormVersionOut])
async def versions(form_id: Key, session: SessionDep, _: ReaderDep) -> list[FormVersionOut]:
    await _document(session, form_id)
    return [_version_out(r) for r in await versions_of(session, form_id)]


@router.put("/{form_id}/versions/{version}", response_model=FormVersionOut, openapi_extra=FORM_BODY)
async def edit(
    form_id: Key, version: Version, body: BodyDep, session: SessionDep, staff: DesignerDep
) -> FormVersionOut:
    _ensure_editable(await _document(session, form_id), staff)
    await _version(session, form_id, version)
    try:
        row = await update_draft(session, form_id, version, body)
    except FormConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except FormRejected as exc:
        raise _rejected(exc) from exc
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="form.draft_edited",
        target_type="form",
        target_id=form_id,
        version=version,
    )
    await session.commit()
    return _version_out(row)


@router.post("/{form_id}/versions/{version}/publish", response_model=FormVersionOut)
async def publish_version(
    form_id: Key, version: Version, session: SessionDep, staff: DesignerDep
) -> FormVersionOut:
    """Publishes a draft for good. Pathways published from now on pin it; runs already going
    keep the version their pathway pinned until they are migrated to a newer pathway version."""
    _ensure_editable(await _document(session, form_id), staff)
    await _version(session, form_id, version)
    try:
        row = await publish(session, form_id, version, staff.id)
    except FormConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except FormRejected as exc:
        raise _rejected(exc) from exc
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="form.published",
        target_type="form",
        target_id=form_id,
        version=version,
    )
    await session.commit()
    return _version_out(row)


FHIR_JSON = "application/fhir+json"


def _questionnaire_problems(exc: QuestionnaireRejected) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"path": path, "message": message} for path, message in exc.problems],
    )


@router.get(
    "/{form_id}/versions/{version}/fhir",
    response_class=JSONResponse,
    responses={200: {"content": {FHIR_JSON: {}}, "description": "a FHIR R4 Questionnaire"}},
)
async def export_version(
    form_id: Key, version: Version, container: ContainerDep, session: SessionDep, _: ReaderDep
) -> JSONResponse:
    """A version as a FHIR R4 Questionnaire (status active once published, else draft)."""
    row = await _version(session, form_id, version)
    form, problems = check_form(row.body, version)
    if form is None:
        raise _rejected(FormRejected(problems))
    resource = to_questionnaire(
        form,
        published=row.status == DefinitionStatus.PUBLISHED,
        base_url=container.settings.public_base_url,
    )
    return JSONResponse(resource, media_type=FHIR_JSON)


@router.post(
    "/fhir",
    response_model=FormVersionOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                FHIR_JSON: {"schema": {"type": "object", "description": "a FHIR R4 Questionnaire"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def import_questionnaire(
    body: BodyDep,
    container: ContainerDep,
    session: SessionDep,
    staff: DesignerDep,
    department_code: DepartmentCode = None,
    ward: DepartmentCode = None,
) -> FormVersionOut:
    """A FHIR R4 Questionnaire as a new draft form (or the next draft of the form it was
    exported from). All of it is imported or none: an unsupported item type, condition or
    option is named at its path, and the form must be complete."""
    try:
        definition = from_questionnaire(body, base_url=container.settings.public_base_url)
    except QuestionnaireRejected as exc:
        raise _questionnaire_problems(exc) from exc
    form, problems = check_form(definition)
    if form is None:
        raise _rejected(FormRejected(problems))
    return await create(definition, session, staff, department_code, ward)


@router.get(
    "/{form_id}/versions/{version}/preview",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "the patient's page"}},
)
async def preview_version(
    form_id: Key, version: Version, container: ContainerDep, session: SessionDep, _: ReaderDep
) -> HTMLResponse:
    """A version, draft or published, as the patient's phone will show it."""
    row = await _version(session, form_id, version)
    form, problems = check_form(row.body, version)
    if form is None:
        raise _rejected(FormRejected(problems))
    return _preview(container, form)
