"""Sending the follow-up invitation: render the SMS with a signed link and hand it to a channel.

Idempotent per run, step and occurrence: the message row is reserved under an idempotency key
before delivery, so a retried activity finds it and does not send a second message.
"""

from __future__ import annotations

from dataclasses import dataclass

import jinja2
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels import MessageChannel, OutgoingMessage
from core.db import SessionFactory, transaction
from core.links import LinkSigner
from core.logs import get_logger
from core.models import CareTask, Encounter, OutboundMessage, Patient, TaskStatus
from core.phones import normalise_cn_mobile
from core.templates import render_message
from workflows.contracts import ACTIVITY_SEND_INVITE, UNDELIVERABLE, InviteRequest, InviteResult

log = get_logger(__name__)


@dataclass(frozen=True)
class MessageBranding:
    hospital_name: str
    hospital_phone: str
    public_base_url: str


class MessagingActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        channel: MessageChannel,
        templates: jinja2.Environment,
        links: LinkSigner,
        branding: MessageBranding,
    ) -> None:
        self._sessions = sessions
        self._channel = channel
        self._templates = templates
        self._links = links
        self._branding = branding

    @activity.defn(name=ACTIVITY_SEND_INVITE)
    async def send_followup_invite(self, request: InviteRequest) -> InviteResult:
        key = f"{request.workflow_id}/{request.step_id}/{request.occurrence}/invite"
        message, patient_name = await self._reserve(key, request)
        if message.status != "sent":
            receipt = await self._channel.deliver(
                OutgoingMessage(
                    message_id=message.id,
                    idempotency_key=key,
                    recipient=message.recipient,
                    body=message.body,
                    category=message.category,
                    redact=(patient_name,),
                )
            )
            message.status = "sent"
            message.provider_message_id = receipt.provider_message_id
        async with transaction(self._sessions) as session:
            stored = await session.get(OutboundMessage, message.id, with_for_update=True)
            task = await session.get(CareTask, request.task_id, with_for_update=True)
            if stored is None or task is None:
                raise LookupError(f"message or task vanished for {key}")
            stored.status = message.status
            stored.provider_message_id = message.provider_message_id
            if task.status == TaskStatus.PENDING:
                task.status = TaskStatus.SENT
                task.sent_at = request.scheduled_for
                task.valid_until = request.valid_until
                task.updated_at = request.scheduled_for
        return InviteResult(message_id=message.id, channel=message.channel)

    async def _reserve(self, key: str, request: InviteRequest) -> tuple[OutboundMessage, str]:
        """The message stored under ``key`` (created if new) and the patient's name."""
        async with transaction(self._sessions) as session:
            patient = await session.get(Patient, request.patient_id)
            if patient is None:
                raise LookupError(f"patient {request.patient_id} is not in the database")
            found = await session.exec(
                select(OutboundMessage).where(OutboundMessage.idempotency_key == key)
            )
            existing = found.first()
            if existing is not None:
                return existing, patient.name
            phone = normalise_cn_mobile(patient.phone)
            if phone is None:
                raise ApplicationError(
                    "患者没有有效的手机号码", type=UNDELIVERABLE, non_retryable=True
                )
            encounter = (
                await session.get(Encounter, request.encounter_id) if request.encounter_id else None
            )
            token = self._links.issue(request.task_id, request.valid_until)
            body = render_message(
                self._templates,
                request.template,
                hospital_name=self._branding.hospital_name,
                hospital_phone=self._branding.hospital_phone,
                patient_name=patient.name,
                discharged_at=encounter.discharged_at if encounter else None,
                step_title=request.step_title,
                valid_until=request.valid_until,
                link=f"{self._branding.public_base_url.rstrip('/')}/p/{token}",
            )
            message = OutboundMessage(
                idempotency_key=key,
                channel=self._channel.name,
                category="followup",
                template=request.template,
                patient_id=patient.id,
                task_id=request.task_id,
                workflow_id=request.workflow_id,
                recipient=phone,
                body=body,
                status="queued",
                scheduled_for=request.scheduled_for,
            )
            session.add(message)
        log.info("message reserved", message_id=message.id, key=key)
        return message, patient.name
