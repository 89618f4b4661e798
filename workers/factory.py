"""Builds the follow-up worker from injected dependencies; used by the worker process and tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import jinja2
from temporalio.client import Client
from temporalio.worker import Worker

from activities.channels import MessageChannel, OutboxChannel
from activities.messaging import MessageBranding, MessagingActivities
from activities.records import RecordActivities
from core.db import SessionFactory
from core.links import LinkSigner
from core.settings import Settings
from core.templates import message_environment
from workflows.followup import FollowUpWorkflow

WORKFLOWS = [FollowUpWorkflow]
# Lets in-flight activities finish on SIGTERM before the worker exits (rolling restarts).
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


@dataclass(frozen=True)
class WorkerDeps:
    sessions: SessionFactory
    channel: MessageChannel
    templates: jinja2.Environment
    links: LinkSigner
    branding: MessageBranding

    @classmethod
    def from_settings(cls, settings: Settings, sessions: SessionFactory) -> WorkerDeps:
        return cls(
            sessions=sessions,
            channel=OutboxChannel(),
            templates=message_environment(settings.tz),
            links=LinkSigner(settings.link_secret.get_secret_value()),
            branding=MessageBranding(
                hospital_name=settings.hospital_name,
                hospital_phone=settings.hospital_phone,
                public_base_url=settings.public_base_url,
            ),
        )


def build_worker(
    client: Client, task_queue: str, deps: WorkerDeps, *, max_cached_workflows: int = 1000
) -> Worker:
    records = RecordActivities(deps.sessions)
    messaging = MessagingActivities(
        deps.sessions, deps.channel, deps.templates, deps.links, deps.branding
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[
            records.run_started,
            records.step_changed,
            records.answers_received,
            records.run_finished,
            messaging.send_followup_invite,
        ],
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_cached_workflows=max_cached_workflows,
    )
