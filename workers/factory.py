"""Builds the workers from injected dependencies; used by the worker process and by tests.

One main worker runs the workflows and the database activities on the configured task queue;
prescriptions run on a review queue of their own, with a worker of their own, which production
runs in a process of its own so a review deadline is met however much else is waiting (RX-4);
each enabled message channel gets its own worker on its own task queue, whose server-side rate
limit (max_task_queue_activities_per_second) caps that channel's single sends across all workers,
and a bulk queue of its own for a batch's sends, many messages per activity, which each worker
process paces to the channel's rate (so a batch and single messages on one channel may together
reach twice it, and W worker processes' batches up to W times it, bounded by ``bulk_rate``).
Pushes are sent many per activity on the single-send queue, paced by each worker process apart
from batches, so that a push never waits behind a batch's pages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.complaints import ComplaintActivities
from activities.exams import ExamActivities
from activities.key_rotation import KeyRotationActivities
from activities.messaging import MessagingActivities
from activities.nursing import NursingActivities
from activities.pathway_records import PathwayRecordActivities
from activities.payments import PaymentActivities
from activities.prescriptions import PrescriptionActivities
from activities.reconciliation import ReconciliationActivities
from contracts.messages import BULK_SEND_SIZE, channel_bulk_task_queue, channel_task_queue
from contracts.prescription import review_task_queue
from core.crypto import configure_from_settings
from core.db import SessionFactory
from core.file_store import EncryptedFiles
from core.links import LinkSigner
from core.settings import Settings
from integrations.clients import (
    enterprise_client,
    exam_client,
    his_charging_client,
    his_client,
    identity_client,
    insurance_client,
    message_channels,
    wechatpay_client,
)
from integrations.enterprise import EnterpriseClient
from integrations.exam import ExamClient
from integrations.his import HisClient
from integrations.his_charging import HisChargingClient
from integrations.identity import IdentityClient
from integrations.insurance import InsuranceClient
from integrations.wechatpay import WeChatPayClient
from messaging.channel import MessageChannel
from services.messages import Composer, TemplateStore
from workflows.complaint import ComplaintWorkflow
from workflows.consultation import ConsultationWorkflow
from workflows.exam import ExamDictionaryChangeWorkflow, ExamEpisodeWorkflow
from workflows.key_rotation import KeyRotationWorkflow
from workflows.message_batch import MessageBatchWorkflow
from workflows.message_delivery import MessageDeliveryWorkflow
from workflows.nursing_order import NursingOrderWorkflow
from workflows.pathway import PathwayRunWorkflow
from workflows.payment import PaymentWorkflow
from workflows.prescription import PrescriptionWorkflow
from workflows.push_outbox import PushOutboxWorkflow
from workflows.reconciliation import ReconciliationWorkflow
from workflows.refund import RefundWorkflow

WORKFLOWS = [
    PathwayRunWorkflow,
    MessageDeliveryWorkflow,
    MessageBatchWorkflow,
    PushOutboxWorkflow,
    PrescriptionWorkflow,
    PaymentWorkflow,
    RefundWorkflow,
    ConsultationWorkflow,
    ReconciliationWorkflow,
    KeyRotationWorkflow,
    ComplaintWorkflow,
    ExamEpisodeWorkflow,
    ExamDictionaryChangeWorkflow,
    NursingOrderWorkflow,
]


class Queues(StrEnum):
    """Which task queues a worker process serves."""

    ALL = "all"
    # Everything but prescriptions' review: pathways, messages, payments, ...
    MAIN = "main"
    REVIEW = "review"


# Lets in-flight activities finish on SIGTERM before the worker exits (rolling restarts).
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


def channel_rates(settings: Settings) -> dict[str, float | None]:
    return {
        "sms": settings.twilio_rate_per_second,
        "wechat": settings.wechat_rate_per_second,
        "outbox": None,
    }


def bulk_rate(per_second: float | None) -> float | None:
    """Bulk sends of up to BULK_SEND_SIZE messages each, paced by each worker process at the
    channel's rate. The server's limit keeps several worker processes near that rate in all; at
    least one activity a second, because the server splits a queue's limit among its partitions
    and a limit of a tenth of an activity a second left a 60-message batch at 1.4 a second."""
    return None if per_second is None else max(per_second / BULK_SEND_SIZE, 1.0)


@dataclass(frozen=True)
class WorkerDeps:
    settings: Settings
    sessions: SessionFactory
    composer: Composer
    channels: Mapping[str, MessageChannel]
    his: HisClient
    enterprises: EnterpriseClient
    charging: HisChargingClient
    insurance: InsuranceClient
    provider: WeChatPayClient
    exams: ExamClient
    identity: IdentityClient

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        sessions: SessionFactory,
        channels: Mapping[str, MessageChannel] | None = None,
    ) -> WorkerDeps:
        # Personal data is encrypted at rest with the keys these settings hold (SEC-4).
        configure_from_settings(settings)
        composer = Composer(
            settings=settings,
            templates=TemplateStore.load(settings),
            links=LinkSigner(settings.link_secret.get_secret_value()),
        )
        return cls(
            settings=settings,
            sessions=sessions,
            composer=composer,
            channels=channels if channels is not None else message_channels(settings),
            his=his_client(settings),
            enterprises=enterprise_client(settings),
            charging=his_charging_client(settings),
            insurance=insurance_client(settings),
            provider=wechatpay_client(settings),
            exams=exam_client(settings),
            identity=identity_client(settings),
        )

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()
        await self.his.close()
        await self.enterprises.close()
        await self.charging.close()
        await self.insurance.close()
        await self.provider.close()
        await self.exams.close()
        await self.identity.close()


# The sandbox still refuses non-deterministic calls (clock, randomness, I/O) inside a workflow,
# but imports each module once for all runs instead of once per run, which cost more CPU than the
# workflows' own logic (py-spy, issue 15). Workflow modules hold no mutable module state, and
# import-linter keeps I/O libraries out of them.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
)


def build_workers(
    client: Client,
    task_queue: str,
    deps: WorkerDeps,
    *,
    max_cached_workflows: int = 1000,
    queues: Queues = Queues.ALL,
) -> list[Worker]:
    rates = channel_rates(deps.settings)
    messaging = MessagingActivities(
        deps.sessions, deps.composer, deps.channels, deps.settings.enabled_channels, rates
    )
    prescriptions = PrescriptionActivities(deps.sessions, deps.his, deps.enterprises)
    pathways = PathwayRecordActivities(deps.sessions, deps.his)
    payments = PaymentActivities(deps.sessions, deps.charging, deps.insurance, deps.provider)
    reconciliation = ReconciliationActivities(deps.sessions, deps.provider)
    key_rotation = KeyRotationActivities(deps.sessions, EncryptedFiles(deps.settings.uploads_path))
    complaints = ComplaintActivities(deps.sessions, deps.settings)
    exams = ExamActivities(deps.sessions, deps.exams, deps.settings)
    nursing = NursingActivities(deps.sessions, deps.identity, deps.charging, deps.settings)
    prescription_steps: list[Callable[..., object]] = [
        prescriptions.check,
        prescriptions.record,
        prescriptions.his_callback,
        prescriptions.dispatch,
        prescriptions.cancel_order,
    ]
    served: list[Worker] = []
    if queues != Queues.REVIEW:
        main = Worker(
            client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            activities=[
                messaging.prepare,
                messaging.finish,
                messaging.record_sent,
                messaging.prepare_many,
                messaging.prepare_pushed,
                messaging.record_many,
                messaging.finish_many,
                messaging.batch_page,
                messaging.batch_finished,
                *prescription_steps,
                pathways.run_opened,
                pathways.occurrences,
                pathways.answers,
                pathways.adjusted,
                pathways.run_closed,
                pathways.his_event,
                payments.presettle,
                payments.release,
                payments.his_settle,
                payments.his_refund_check,
                payments.his_refund,
                payments.insurance_settle,
                payments.insurance_cancel,
                payments.provider_create,
                payments.provider_query,
                payments.provider_close,
                payments.provider_refund,
                payments.provider_refund_query,
                payments.record_payment,
                payments.record_refund,
                payments.open_refund,
                payments.record_consultation,
                reconciliation.reconcile,
                key_rotation.reencrypt_batch,
                key_rotation.reseal_files,
                complaints.open,
                complaints.record,
                exams.book,
                exams.record,
                exams.assess,
                exams.apply_dictionary,
                nursing.verify_identity,
                nursing.charge,
                nursing.dispatch,
                nursing.qualified,
                nursing.record,
                nursing.alarm,
            ],
            graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
            max_cached_workflows=max_cached_workflows,
            workflow_runner=WORKFLOW_RUNNER,
        )
        channel_workers = [
            Worker(
                client,
                task_queue=channel_task_queue(task_queue, name),
                # Single messages, and pushes many at a time (the outbox's sends).
                activities=[messaging.deliver, messaging.send_many],
                max_task_queue_activities_per_second=rates.get(name),
                graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
            )
            for name in deps.channels
        ]
        bulk_workers = [
            Worker(
                client,
                task_queue=channel_bulk_task_queue(task_queue, name),
                activities=[messaging.send_many],
                max_task_queue_activities_per_second=bulk_rate(rates.get(name)),
                graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
            )
            for name in deps.channels
        ]
        served += [main, *channel_workers, *bulk_workers]
    if queues != Queues.MAIN:
        # Prescriptions started since the review queue exists; the main worker above keeps serving
        # the ones started on the main queue before.
        served.append(
            Worker(
                client,
                task_queue=review_task_queue(task_queue),
                workflows=[PrescriptionWorkflow],
                activities=prescription_steps,
                graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
                max_cached_workflows=max_cached_workflows,
                workflow_runner=WORKFLOW_RUNNER,
            )
        )
    return served


@asynccontextmanager
async def running_workers(workers: list[Worker]) -> AsyncIterator[list[Worker]]:
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield workers
