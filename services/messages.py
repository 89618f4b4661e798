"""Composing a message: the recipient, the template, the variables and the rendering, checked
before anything is stored, so an invalid request leaves nothing behind and a patient never gets
a message with a blank in it. Used by the push API (to answer 422 at once) and by the delivery
workflow's prepare activity (for messages the platform's own workflows send)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from pydantic_core import to_jsonable_python
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from contracts.messages import DELIVERY_WORKFLOW, MessageRequest, delivery_workflow_id
from core.links import LinkSigner
from core.models import MessageStatus, MessageTemplate, OutboundMessage, Patient, TemplateOwner
from core.phones import to_e164
from core.settings import Settings
from messaging.categories import COMMON_VARIABLES, is_urgent
from messaging.channel import OutgoingMessage
from messaging.routing import next_allowed_time
from messaging.sms import sms_size
from messaging.templates import (
    MissingVariables,
    TemplateSpec,
    WeChatTemplate,
    load_platform_templates,
    make_environment,
    render_template,
)
from services.hospitals import HospitalProfile, hospital_profile
from services.search_attributes import for_patient


class MessageRejected(ValueError):
    """The request cannot become a message; ``field`` names the offending input."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def spec_from_row(row: MessageTemplate) -> TemplateSpec:
    return TemplateSpec(
        code=row.code,
        category=row.category,
        name=row.name,
        variables=list(row.variables),
        sms=row.sms,
        wechat=WeChatTemplate.model_validate(row.wechat) if row.wechat else None,
    )


class TemplateStore:
    """Platform templates from files; team and personal ones from the database. A code resolves
    to the sender's personal template, then their department's, then the platform's."""

    def __init__(self, platform: dict[str, TemplateSpec]) -> None:
        self.platform = platform

    @classmethod
    def load(cls, settings: Settings) -> TemplateStore:
        return cls(load_platform_templates(max_sms_segments=settings.sms_max_segments))

    async def resolve(
        self,
        session: AsyncSession,
        code: str,
        *,
        department_code: str | None,
        staff_id: str | None,
    ) -> TemplateSpec | None:
        owners = []
        if staff_id:
            owners.append(
                (col(MessageTemplate.owner_type) == TemplateOwner.PERSONAL.value)
                & (col(MessageTemplate.owner_id) == staff_id)
            )
        if department_code:
            owners.append(
                (col(MessageTemplate.owner_type) == TemplateOwner.TEAM.value)
                & (col(MessageTemplate.owner_id) == department_code)
            )
        if owners:
            found = await session.exec(
                select(MessageTemplate).where(
                    MessageTemplate.code == code, MessageTemplate.active, or_(*owners)
                )
            )
            rows = {row.owner_type: row for row in found.all()}
            row = rows.get(TemplateOwner.PERSONAL) or rows.get(TemplateOwner.TEAM)
            if row is not None:
                return spec_from_row(row)
        return self.platform.get(code)


async def owned_templates(
    session: AsyncSession, *, staff_id: str, department_code: str | None
) -> Sequence[MessageTemplate]:
    """The active templates one member of staff may use besides the platform's: their personal
    ones and their department's, by code."""
    owned = or_(
        (col(MessageTemplate.owner_type) == TemplateOwner.PERSONAL)
        & (col(MessageTemplate.owner_id) == staff_id),
        (col(MessageTemplate.owner_type) == TemplateOwner.TEAM)
        & (col(MessageTemplate.owner_id) == (department_code or "")),
    )
    rows = await session.exec(
        select(MessageTemplate)
        .where(owned, MessageTemplate.active)
        .order_by(col(MessageTemplate.code))
    )
    return rows.all()


async def owned_template(
    session: AsyncSession, *, code: str, owner_type: str, owner_id: str
) -> MessageTemplate | None:
    """The owner's template with this code, active or not."""
    found = await session.exec(
        select(MessageTemplate).where(
            MessageTemplate.code == code,
            MessageTemplate.owner_type == owner_type,
            MessageTemplate.owner_id == owner_id,
        )
    )
    return found.first()


def staff_id_of(sender: str) -> str | None:
    kind, _, ident = sender.partition(":")
    return ident if kind == "staff" and ident else None


@dataclass
class ComposeMemo:
    """What the requests composed in one transaction share, looked up once: a batch page's all
    name one template and one hospital. ``patients`` holds the page's patients, read together;
    the session's identity map alone would not keep them (it holds rows only weakly)."""

    specs: dict[tuple[str, str | None, str | None], TemplateSpec | None] = field(
        default_factory=dict
    )
    profiles: dict[str, HospitalProfile] = field(default_factory=dict)
    patients: dict[str, Patient] = field(default_factory=dict)

    async def patient(self, session: AsyncSession, patient_id: str | None) -> Patient | None:
        if not patient_id:
            return None
        return self.patients.get(patient_id) or await session.get(Patient, patient_id)


@dataclass
class Composer:
    settings: Settings
    templates: TemplateStore
    links: LinkSigner
    _envs: dict[str, jinja2.Environment] = field(default_factory=dict)

    def environment(self, tz: ZoneInfo) -> jinja2.Environment:
        env = self._envs.get(tz.key)
        if env is None:
            env = self._envs[tz.key] = make_environment(tz)
        return env

    async def compose(
        self,
        session: AsyncSession,
        request: MessageRequest,
        now: datetime,
        *,
        memo: ComposeMemo | None = None,
    ) -> OutboundMessage:
        """Checks and renders the request and adds its row to the session (not committed).

        ``memo`` carries what earlier requests composed in the same transaction looked up.

        Raises MessageRejected naming the field when the request cannot become a message."""
        memo = memo or ComposeMemo()
        patient = await memo.patient(session, request.patient_id)
        if request.patient_id and patient is None:
            raise MessageRejected("to.patient_id", "no such patient")
        if request.phone:
            phone = to_e164(request.phone)
            if phone is None:
                raise MessageRejected("to.phone", "not a mainland mobile number or an E.164 number")
        else:
            phone = to_e164(patient.phone) if patient else None
        if patient is None and phone is None:
            raise MessageRejected("to", "a patient or a phone number is required")

        owner = (request.template, request.department_code, staff_id_of(request.sender))
        if owner in memo.specs:
            spec = memo.specs[owner]
        else:
            spec = memo.specs[owner] = await self.templates.resolve(
                session, owner[0], department_code=owner[1], staff_id=owner[2]
            )
        if spec is None:
            raise MessageRejected("template", f"unknown template '{request.template}'")
        if request.category and request.category != spec.category:
            raise MessageRejected(
                "category", f"template '{spec.code}' is a '{spec.category}' template"
            )

        profile = memo.profiles.get(request.hospital_code)
        if profile is None:
            profile = memo.profiles[request.hospital_code] = await hospital_profile(
                session, self.settings, request.hospital_code
            )
        # Quiet hours (MSG-2 routing): a non-urgent message waits for the morning, and a link it
        # carries is valid from then, not from when the message was due.
        send_at = now
        if not is_urgent(spec.category, request.urgent):
            send_at = next_allowed_time(now, profile.tz, profile.config.quiet_hours)
        variables: dict[str, Any] = {
            "hospital_name": profile.name,
            "hospital_phone": profile.phone,
            "patient_name": patient.name if patient else "",
            **request.variables,
        }
        link_expires_at = None
        if request.link is not None:
            link = request.link
            link_expires_at = link.expires_at or send_at + (link.valid_for or timedelta(0))
            token = self.links.issue(link.task_id, link_expires_at)
            variables["link"] = f"{self.settings.public_base_url.rstrip('/')}/{link.path}/{token}"
            variables["valid_until"] = link_expires_at
        try:
            rendered = render_template(spec, self.environment(profile.tz), variables)
        except MissingVariables as exc:
            raise MessageRejected(
                f"variables.{exc.names[0]}", f"missing ({', '.join(exc.names)})"
            ) from exc
        except (jinja2.TemplateError, ValueError) as exc:
            raise MessageRejected("variables", f"does not render: {exc}") from exc
        size = sms_size(rendered.sms)
        if size.segments > self.settings.sms_max_segments:
            raise MessageRejected(
                "variables",
                f"the SMS would be {size.segments} segments ({size.units} characters); "
                f"the limit is {self.settings.sms_max_segments}",
            )

        stale = request.not_after is not None and send_at > request.not_after
        message = OutboundMessage(
            idempotency_key=request.key,
            category=spec.category,
            template=spec.code,
            hospital_code=profile.code,
            department_code=request.department_code,
            sender=request.sender,
            patient_id=patient.id if patient else None,
            recipient_phone=phone,
            recipient_openid=patient.wechat_openid if patient and not request.phone else None,
            task_id=request.task_id,
            workflow_id=request.workflow_id,
            batch_id=request.batch_id,
            urgent=request.urgent,
            variables=to_jsonable_python(
                {k: v for k, v in request.variables.items() if k not in COMMON_VARIABLES}
            ),
            body=rendered.sms,
            wechat_payload=rendered.wechat,
            status=MessageStatus.SCHEDULED if send_at > now else MessageStatus.QUEUED,
            scheduled_for=now,
            not_before=send_at if send_at > now else None,
            link_expires_at=link_expires_at,
        )
        if stale:
            # Seven check-in reminders for days gone by, arriving together at 07:00, help
            # nobody: kept in the send log with the reason, and not sent.
            message.status = MessageStatus.SUPPRESSED
            held_until = f"{send_at.astimezone(profile.tz):%m月%d日 %H:%M}"
            message.failure_reason = (
                f"静默时段至{held_until}，届时已过有效时间，未发送"
                if send_at > now
                else "已过有效时间，未发送"
            )
        # Not flushed here: a batch page's rows go to the database together, in one statement.
        session.add(message)
        return message


async def message_by_key(session: AsyncSession, key: str) -> OutboundMessage | None:
    found = await session.exec(
        select(OutboundMessage).where(OutboundMessage.idempotency_key == key)
    )
    return found.first()


def outgoing(message: OutboundMessage, patient_name: str | None) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=message.id,
        idempotency_key=message.idempotency_key,
        category=message.category,
        template=message.template,
        phone=message.recipient_phone,
        openid=message.recipient_openid,
        sms_body=message.body,
        wechat=message.wechat_payload,
        redact=(patient_name,) if patient_name else (),
    )


async def send_message(
    session: AsyncSession,
    composer: Composer,
    temporal: Client,
    task_queue: str,
    request: MessageRequest,
    now: datetime,
) -> str:
    """Composes the message (MessageRejected naming the field) unless one with its key exists,
    and starts its delivery workflow, once per key; its workflow id. The caller commits."""
    if await message_by_key(session, request.key) is None:
        await composer.compose(session, request, now=now)
        await session.flush()  # a concurrent twin fails here, before its workflow starts
    workflow_id = delivery_workflow_id(request.key)
    await temporal.start_workflow(
        DELIVERY_WORKFLOW,
        request,
        id=workflow_id,
        task_queue=task_queue,
        search_attributes=await for_patient(
            session,
            request.patient_id,
            department=request.department_code,
            hospital=request.hospital_code,
        ),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return workflow_id
