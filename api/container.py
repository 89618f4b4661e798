"""Everything a request handler needs, built once per process (or injected by tests)."""

from __future__ import annotations

from dataclasses import dataclass

import jinja2
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from core.crypto import configure_from_settings
from core.db import SessionFactory, create_engine, session_factory, transaction
from core.file_store import EncryptedFiles
from core.links import FileLinkSigner, LinkSigner
from core.settings import Settings
from core.templates import page_environment
from core.temporal import connect_temporal
from integrations.clients import (
    exam_client,
    his_charging_client,
    his_client,
    wechatpay_notice_verifier,
)
from integrations.exam import ExamClient
from integrations.his import HisClient
from integrations.his_charging import HisChargingClient
from integrations.temporal_search import ensure_registered
from integrations.wechatpay import NoticeVerifier
from pathways.library import load_library
from services.delivery_reports import DeliveryReports
from services.enrolment import EnrolmentContext
from services.messages import Composer, TemplateStore
from services.pathway_definitions import DesignContext, sync_library
from services.payments import PaymentContext


@dataclass
class Container:
    settings: Settings
    sessions: SessionFactory
    temporal: Client
    his: HisClient
    links: LinkSigner
    pages: jinja2.Environment
    composer: Composer
    design: DesignContext
    charging: HisChargingClient
    verifier: NoticeVerifier
    # Uploaded photos and signatures, encrypted, and the links that let a page show them.
    files: EncryptedFiles
    file_links: FileLinkSigner
    # The physical-exam vendor (US-K1).
    exams: ExamClient
    # Providers' delivery reports, applied in groups as they arrive.
    reports: DeliveryReports
    engine: AsyncEngine | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        sessions: SessionFactory,
        temporal: Client,
        his: HisClient,
        engine: AsyncEngine | None = None,
    ) -> Container:
        # Personal data is encrypted at rest with the keys these settings hold (SEC-4).
        configure_from_settings(settings)
        links = LinkSigner(settings.link_secret.get_secret_value())
        templates = TemplateStore.load(settings)
        return cls(
            settings=settings,
            sessions=sessions,
            temporal=temporal,
            his=his,
            links=links,
            pages=page_environment(settings.tz),
            composer=Composer(settings, templates, links),
            design=DesignContext(
                library=load_library(set(templates.platform)), templates=set(templates.platform)
            ),
            charging=his_charging_client(settings),
            verifier=wechatpay_notice_verifier(settings),
            files=EncryptedFiles(settings.uploads_path),
            file_links=FileLinkSigner(settings.link_secret.get_secret_value()),
            exams=exam_client(settings),
            reports=DeliveryReports(sessions),
            engine=engine,
        )

    @property
    def enrolment(self) -> EnrolmentContext:
        return EnrolmentContext(self.settings, self.temporal, self.his)

    @property
    def payments(self) -> PaymentContext:
        return PaymentContext(self.settings, self.temporal, self.his, self.charging, self.verifier)

    @classmethod
    async def open(cls, settings: Settings) -> Container:
        engine = create_engine(settings.database_url, echo=settings.database_echo)
        temporal = await connect_temporal(settings)
        await ensure_registered(temporal, settings.temporal_namespace)
        his = his_client(settings)
        container = cls.build(
            settings,
            session_factory(engine, audit_key=settings.audit_key.get_secret_value()),
            temporal,
            his,
            engine,
        )
        await container.sync_library()
        return container

    async def sync_library(self) -> None:
        """Publishes the pathway library shipped with this release (idempotent)."""
        async with transaction(self.sessions) as session:
            await sync_library(session, self.design)

    async def close(self) -> None:
        await self.his.close()
        await self.charging.close()
        await self.exams.close()
        if self.engine is not None:
            await self.engine.dispose()
