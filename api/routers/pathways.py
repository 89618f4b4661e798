"""The pathway designer (CM-1, CM-4; FU-*, ED-*, SAT-*): drafts in JSON or YAML, validation with
every problem at its path, publication (immutable), versions, the live version for new runs,
a preview of the whole timeline for a sample patient, and per-plan statistics."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from api.definition_body import PROBLEMS_RESPONSE, BodyDep, ValidationOut, definition_openapi
from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, require
from api.schemas import field_error
from core.models import Pathway, PathwayVersion
from core.validation import Key, Line, SaneDateTime, Text, Version
from pathways.definition import PathwayDefinition, PathwaySnapshot
from pathways.membership import EventFacts, matches
from pathways.timeline import planned_steps
from services import audit
from services.pathway_definitions import (
    AVAILABILITY_CHANGES,
    DefinitionConflict,
    DefinitionRejected,
    Published,
    change_availability,
    create_draft,
    pathways_with_version_counts,
    publish,
    set_live,
    update_draft,
    version_count,
    version_row,
    versions_of,
)
from services.pathway_stats import PlanStats, plan_statistics
from services.staff import StaffPrincipal

router = APIRouter(prefix="/api/pathways", tags=["pathway designer"], responses=PROBLEMS_RESPONSE)
# Its schema is GET /api/pathways/schema.
DEFINITION_BODY = definition_openapi("pathway", "/api/pathways/schema")
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.PATHWAYS_READ))]
DesignerDep = Annotated[StaffPrincipal, Depends(require(Permission.PATHWAYS_DESIGN))]


class VersionOut(BaseModel):
    pathway_id: str
    version: int
    status: str
    live: bool
    created_by: str
    created_at: datetime
    published_at: datetime | None
    body: dict[str, Any]


class PathwayOut(BaseModel):
    id: str
    name: str
    kind: str
    live_version: int | None
    availability: str
    library: bool
    versions: int


def _rejected(exc: DefinitionRejected) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, [p.model_dump() for p in exc.problems]
    )


def _version_out(row: PathwayVersion, live: int | None) -> VersionOut:
    return VersionOut.model_validate({**row.model_dump(), "live": row.version == live})


@router.get("/schema", response_model=dict[str, Any])
async def schema() -> dict[str, Any]:
    """The pathway language as JSON Schema, for editors and other systems."""
    return PathwayDefinition.model_json_schema()


@router.post("/validate", response_model=ValidationOut, openapi_extra=DEFINITION_BODY)
async def validate(
    body: BodyDep, container: ContainerDep, session: SessionDep, _: ReaderDep
) -> ValidationOut:
    problems = container.design.validate(body, await Published.load(session))
    return ValidationOut(valid=not problems, problems=problems)


@router.get("", response_model=list[PathwayOut])
async def list_pathways(session: SessionDep, _: ReaderDep) -> list[PathwayOut]:
    return [
        PathwayOut.model_validate({**p.model_dump(), "versions": count})
        for p, count in await pathways_with_version_counts(session)
    ]


@router.post(
    "",
    response_model=VersionOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=DEFINITION_BODY,
)
async def create(
    body: BodyDep, container: ContainerDep, session: SessionDep, staff: DesignerDep
) -> VersionOut:
    try:
        draft = await create_draft(session, container.design, body, staff.id)
    except DefinitionRejected as exc:
        raise _rejected(exc) from exc
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="pathway.draft_created",
        target_type="pathway",
        target_id=draft.pathway_id,
        version=draft.version,
    )
    await session.commit()
    pathway = await session.get(Pathway, draft.pathway_id)
    return _version_out(draft, pathway.live_version if pathway else None)


@router.get("/{pathway_id}/versions", response_model=list[VersionOut])
async def versions(pathway_id: Key, session: SessionDep, _: ReaderDep) -> list[VersionOut]:
    pathway = await session.get(Pathway, pathway_id)
    if pathway is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no pathway '{pathway_id}'")
    rows = await versions_of(session, pathway_id)
    return [_version_out(r, pathway.live_version) for r in rows]


async def _version(session: SessionDep, pathway_id: str, version: int) -> PathwayVersion:
    try:
        return await version_row(session, pathway_id, version)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


@router.put(
    "/{pathway_id}/versions/{version}", response_model=VersionOut, openapi_extra=DEFINITION_BODY
)
async def edit(
    pathway_id: Key, version: Version, body: BodyDep, session: SessionDep, staff: DesignerDep
) -> VersionOut:
    await _version(session, pathway_id, version)
    try:
        row = await update_draft(session, pathway_id, version, body)
    except DefinitionConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except DefinitionRejected as exc:
        raise _rejected(exc) from exc
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="pathway.draft_edited",
        target_type="pathway",
        target_id=pathway_id,
        version=version,
    )
    await session.commit()
    pathway = await session.get(Pathway, pathway_id)
    return _version_out(row, pathway.live_version if pathway else None)


@router.post("/{pathway_id}/versions/{version}/publish", response_model=VersionOut)
async def publish_version(
    pathway_id: Key,
    version: Version,
    container: ContainerDep,
    session: SessionDep,
    staff: DesignerDep,
) -> VersionOut:
    await _version(session, pathway_id, version)
    try:
        row = await publish(session, container.design, pathway_id, version, staff.id)
    except DefinitionConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except DefinitionRejected as exc:
        raise _rejected(exc) from exc
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="pathway.published",
        target_type="pathway",
        target_id=pathway_id,
        version=version,
    )
    await session.commit()
    pathway = await session.get(Pathway, pathway_id)
    return _version_out(row, pathway.live_version if pathway else None)


class LiveIn(BaseModel):
    version: Version


@router.put("/{pathway_id}/live", response_model=PathwayOut)
async def live(
    pathway_id: Key, body: LiveIn, session: SessionDep, staff: DesignerDep
) -> PathwayOut:
    await _version(session, pathway_id, body.version)
    try:
        pathway = await set_live(session, pathway_id, body.version)
    except DefinitionConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="pathway.live_set",
        target_type="pathway",
        target_id=pathway_id,
        version=body.version,
    )
    await session.commit()
    count = await version_count(session, pathway_id)
    return PathwayOut.model_validate({**pathway.model_dump(), "versions": count})


class AvailabilityChange(BaseModel):
    reason: Annotated[Text, Field(min_length=1, max_length=300)]


AvailabilityVerb = Literal["suspend", "resume", "retire"]


@router.post(
    "/{pathway_id}/{change}",
    response_model=PathwayOut,
    responses={409: {"description": "Not from the pathway's current availability"}},
)
async def availability(
    pathway_id: Key,
    change: AvailabilityVerb,
    body: AvailabilityChange,
    session: SessionDep,
    staff: DesignerDep,
) -> PathwayOut:
    """Takes a pathway offline or back: ``suspend`` stops new enrolments for now, ``resume``
    takes them up again, ``retire`` stops them for good. Runs already started go on."""
    try:
        pathway = await change_availability(session, pathway_id, change)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no pathway '{pathway_id}'") from exc
    except DefinitionConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action=AVAILABILITY_CHANGES[change][2],
        target_type="pathway",
        target_id=pathway_id,
        reason=body.reason,
    )
    await session.commit()
    count = await version_count(session, pathway_id)
    return PathwayOut.model_validate({**pathway.model_dump(), "versions": count})


class SamplePatient(BaseModel):
    sex: Line | None = None
    birth_date: SaneDateTime | None = None
    department_code: Line | None = None
    ward: Line | None = None
    encounter_kind: Line | None = None
    event_type: Line | None = None
    diagnoses: list[tuple[Line, Line]] = Field(default_factory=list, max_length=100)
    drugs: list[Line] = Field(default_factory=list, max_length=100)


class PreviewIn(BaseModel):
    anchor_at: SaneDateTime
    patient: SamplePatient | None = None


class PlannedOut(BaseModel):
    step_id: str
    index: int
    title: str
    action_type: str
    due_at: datetime
    valid_until: datetime | None
    lost_at: datetime | None
    condition: str | None


class PreviewOut(BaseModel):
    pathway_id: str
    version: int
    enrols: bool | None
    timeline: list[PlannedOut]
    # Branch steps: not on the timeline, started by the rules that name them.
    dormant: list[dict[str, Any]]


@router.post("/{pathway_id}/versions/{version}/preview", response_model=PreviewOut)
async def preview(
    pathway_id: Key,
    version: Version,
    body: PreviewIn,
    container: ContainerDep,
    session: SessionDep,
    _: ReaderDep,
) -> PreviewOut:
    """The whole computed timeline for a sample patient and anchor time; runs nothing."""
    row = await _version(session, pathway_id, version)
    try:
        pinned = (
            PathwaySnapshot.model_validate(row.snapshot)
            if row.snapshot is not None
            else container.design.snapshot(row.body, version, await Published.load(session))
        )
    except DefinitionRejected as exc:
        raise _rejected(exc) from exc
    definition = pinned.definition
    tz = container.settings.tz
    if body.anchor_at.tzinfo is None:
        raise field_error(("body", "anchor_at"), "anchor_at needs a time zone")
    enrols = None
    if body.patient is not None and definition.membership is not None:
        sample = body.patient
        enrols = matches(
            definition.membership,
            EventFacts(
                event_type=sample.event_type or definition.membership.events[0],
                encounter_kind=sample.encounter_kind,
                department_code=sample.department_code,
                ward=sample.ward,
                diagnoses=sample.diagnoses,
                drugs=sample.drugs,
                sex=sample.sex,
                birth_date=sample.birth_date.date() if sample.birth_date else None,
                on=body.anchor_at.astimezone(tz).date(),
            ),
        )
    planned = [
        PlannedOut.model_validate(asdict(item))
        for item in planned_steps(definition, body.anchor_at, tz)
    ]
    dormant = [
        {
            "step_id": s.id,
            "title": s.title,
            "after_activation": s.after_activation,
            "activated_by": [
                f"{o.id}.rules[{i}]"
                for o in definition.steps
                for i, r in enumerate(o.rules)
                if s.id in r.activate
            ],
        }
        for s in definition.steps
        if s.schedule is None
    ]
    return PreviewOut(
        pathway_id=pathway_id, version=version, enrols=enrols, timeline=planned, dormant=dormant
    )


@router.get("/{pathway_id}/stats", response_model=PlanStats)
async def stats(
    pathway_id: Key,
    session: SessionDep,
    staff: ReaderDep,
    since: SaneDateTime | None = None,
) -> PlanStats:
    """FU-7, ED-2, SAT and CM-7 figures for one plan, from the task projection in one query."""
    return await plan_statistics(session, staff, pathway_id, since=since)
