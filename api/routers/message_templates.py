"""Message templates (MSG-2, ED-5): the platform's, the department's (team) and one's own
(personal). Saving checks the template the way sending would use it: undeclared or
unsupplied variables, syntax errors and SMS length are 422s naming the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, require
from api.schemas import field_error, links
from core.models import MessageTemplate, TemplateOwner, utcnow
from core.validation import Int53, Key, Line, Real, Slug, Text
from messaging.categories import COMMON_VARIABLES, Category, sample_value
from messaging.sms import sms_size
from messaging.templates import (
    TemplateProblem,
    TemplateSpec,
    WeChatTemplate,
    check_template,
    render_template,
)
from services import audit
from services.messages import owned_template, owned_templates
from services.staff import StaffPrincipal

router = APIRouter(prefix="/api/message-templates", tags=["message templates"])

ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.TEMPLATES_READ))]
EditorDep = Annotated[StaffPrincipal, Depends(require(Permission.TEMPLATES_EDIT))]


class TemplateIn(BaseModel):
    code: Slug
    owner: Literal["team", "personal"]
    category: Category
    name: Annotated[Line, Field(min_length=1, max_length=100)]
    variables: list[Line] = Field(default_factory=list, max_length=30)
    sms: Annotated[Text, Field(min_length=1, max_length=2000)]
    wechat: WeChatTemplate | None = None


class TemplateOut(BaseModel):
    id: str | None
    code: str
    owner_type: str
    owner_id: str | None
    category: str
    name: str
    variables: list[str]
    sms: str
    wechat: dict[str, Any] | None
    version: int


class PreviewIn(BaseModel):
    """Either a saved template's code or a draft; variables default to sample data."""

    code: Line | None = None
    draft: TemplateIn | None = None
    variables: dict[Line, Text | Int53 | Real] = Field(default_factory=dict, max_length=50)


class PreviewOut(BaseModel):
    sms: str
    sms_characters: int
    sms_segments: int
    sms_encoding: str
    wechat: dict[str, Any] | None
    problems: list[dict[str, str]]


def _spec(body: TemplateIn) -> TemplateSpec:
    return TemplateSpec(
        code=body.code,
        category=body.category,
        name=body.name,
        variables=body.variables,
        sms=body.sms,
        wechat=body.wechat,
    )


def _problems_to_422(problems: list[TemplateProblem], prefix: tuple[str, ...]) -> None:
    if problems:
        raise RequestValidationError(
            [
                {"type": "value_error", "loc": (*prefix, *p.field.split(".")), "msg": p.message}
                for p in problems
            ]
        )


def _owner_id(staff: StaffPrincipal, owner: str) -> str:
    if owner == TemplateOwner.PERSONAL:
        return staff.id
    if staff.department_code is None:
        raise field_error(("body", "owner"), "team templates need a department")
    return staff.department_code


def _out(row: MessageTemplate) -> TemplateOut:
    return TemplateOut.model_validate(row.model_dump())


@router.get("", response_model=list[TemplateOut])
async def list_templates(
    container: ContainerDep, session: SessionDep, staff: ReaderDep
) -> list[TemplateOut]:
    platform = [
        TemplateOut(
            id=None,
            code=spec.code,
            owner_type=TemplateOwner.PLATFORM,
            owner_id=None,
            category=spec.category,
            name=spec.name,
            variables=spec.variables,
            sms=spec.sms,
            wechat=spec.wechat.model_dump() if spec.wechat else None,
            version=1,
        )
        for spec in container.composer.templates.platform.values()
    ]
    rows = await owned_templates(session, staff_id=staff.id, department_code=staff.department_code)
    return platform + [_out(r) for r in rows]


@router.post(
    "",
    response_model=TemplateOut,
    status_code=status.HTTP_201_CREATED,
    responses=links(201, "id", ("PUT", "/api/message-templates/{template_id}", "template_id")),
)
async def create_template(
    body: TemplateIn, container: ContainerDep, session: SessionDep, staff: EditorDep
) -> TemplateOut:
    spec = _spec(body)
    env = container.composer.environment(container.settings.tz)
    _problems_to_422(
        check_template(spec, env, max_sms_segments=container.settings.sms_max_segments),
        ("body",),
    )
    owner_id = _owner_id(staff, body.owner)
    exists = await owned_template(session, code=body.code, owner_type=body.owner, owner_id=owner_id)
    if exists is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"a {body.owner} template '{body.code}' already exists"
        )
    row = MessageTemplate(
        code=body.code,
        owner_type=body.owner,
        owner_id=owner_id,
        category=body.category,
        name=body.name,
        variables=body.variables,
        sms=body.sms,
        wechat=body.wechat.model_dump() if body.wechat else None,
        created_by=staff.id,
    )
    session.add(row)
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="message_template.created",
        target_type="message_template",
        target_id=row.id,
        code=body.code,
    )
    await session.commit()
    return _out(row)


@router.put("/{template_id}", response_model=TemplateOut)
async def update_template(
    template_id: Key,
    body: TemplateIn,
    container: ContainerDep,
    session: SessionDep,
    staff: EditorDep,
) -> TemplateOut:
    row = await session.get(MessageTemplate, template_id, with_for_update=True)
    if row is None or row.owner_id != _owner_id(staff, row.owner_type):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no template with id '{template_id}'")
    if (body.code, body.owner) != (row.code, row.owner_type):
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "code"), "msg": "code and owner are fixed"}]
        )
    spec = _spec(body)
    env = container.composer.environment(container.settings.tz)
    _problems_to_422(
        check_template(spec, env, max_sms_segments=container.settings.sms_max_segments),
        ("body",),
    )
    row.category, row.name, row.variables, row.sms = (
        body.category,
        body.name,
        body.variables,
        body.sms,
    )
    row.wechat = body.wechat.model_dump() if body.wechat else None
    row.version += 1
    row.updated_at = utcnow()
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="message_template.updated",
        target_type="message_template",
        target_id=row.id,
        version=row.version,
    )
    await session.commit()
    return _out(row)


@router.post("/preview", response_model=PreviewOut)
async def preview(
    body: PreviewIn, container: ContainerDep, session: SessionDep, staff: ReaderDep
) -> PreviewOut:
    if (body.code is None) == (body.draft is None):
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "code"), "msg": "give a code or a draft"}]
        )
    if body.code is not None:
        spec = await container.composer.templates.resolve(
            session, body.code, department_code=staff.department_code, staff_id=staff.id
        )
        if spec is None:
            raise RequestValidationError(
                [{"type": "value_error", "loc": ("body", "code"), "msg": "unknown template"}]
            )
    else:
        assert body.draft is not None
        spec = _spec(body.draft)
    env = container.composer.environment(container.settings.tz)
    problems = check_template(spec, env, max_sms_segments=container.settings.sms_max_segments)
    if any(p.field != "sms" or "segments" not in p.message for p in problems):
        # Only a too-long SMS can still be shown; anything else would not render.
        return PreviewOut(
            sms="",
            sms_characters=0,
            sms_segments=0,
            sms_encoding="",
            wechat=None,
            problems=[{"field": p.field, "message": p.message} for p in problems],
        )
    variables = {
        name: body.variables.get(name, sample_value(name))
        for name in {*spec.variables, *COMMON_VARIABLES}
    }
    rendered = render_template(spec, env, variables)
    size = sms_size(rendered.sms)
    return PreviewOut(
        sms=rendered.sms,
        sms_characters=size.units,
        sms_segments=size.segments,
        sms_encoding=size.encoding,
        wechat=rendered.wechat,
        problems=[{"field": p.field, "message": p.message} for p in problems],
    )
