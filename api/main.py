"""The HTTP API: ``uvicorn api.main:app``. Thin: validates, authorises, starts or signals
workflows, and reads projections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from api import outage
from api.container import Container
from api.routers import (
    alerts,
    articles,
    audit,
    auth,
    complaint_pages,
    complaints,
    consultations,
    enrolment,
    enterprise_webhooks,
    exam_interfaces,
    exam_pages,
    exams,
    forms,
    health,
    his_prescriptions,
    his_webhooks,
    hospitals,
    message_preferences,
    message_status_callbacks,
    message_templates,
    messages,
    nursing_admin,
    nursing_orders,
    nursing_pages,
    pathways,
    patient_exclusion,
    patient_files,
    patient_pages,
    patients,
    payment_pages,
    payment_webhooks,
    payments,
    prescriptions,
    run_operations,
    run_reports,
    runs,
    staff_admin,
    tasks,
)
from api.signed import declare_bodies
from api.workbench import alerts as workbench_alerts
from api.workbench import enrolment as workbench_enrolment
from api.workbench import finance as workbench_finance
from api.workbench import pathways as workbench_pathways
from api.workbench import patients as workbench_patients
from api.workbench import queue as workbench_queue
from api.workbench import render as workbench_pages
from api.workbench import reports as workbench_reports
from api.workbench import review as workbench_review
from api.workbench import run_actions as workbench_run_actions
from api.workbench import sign_in as workbench_sign_in
from core.logs import configure_logging
from core.settings import Settings, get_settings


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """With a container (tests), the app uses it as is; otherwise it opens its own at start-up."""
    settings = settings or (container.settings if container else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if container is not None:
            yield
            return
        configure_logging(json=settings.json_logs, level=settings.log_level)
        opened = await Container.open(settings)
        app.state.container = opened
        try:
            yield
        finally:
            await opened.close()

    app = FastAPI(
        title="CarePath",
        summary="Care pathways for hospitals as durable Temporal workflows",
        version="0.1.0",
        lifespan=lifespan,
    )
    if container is not None:
        app.state.container = container
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        return declare_bodies(generate_openapi())

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(RequestValidationError, auth.redact_validation_errors)
    outage.install(app)
    workbench_pages.install(app)
    for router in (
        health.router,
        his_webhooks.router,
        patient_pages.router,
        patient_files.router,
        tasks.router,
        runs.router,
        alerts.router,
        messages.router,
        message_templates.router,
        message_preferences.router,
        message_status_callbacks.router,
        hospitals.router,
        his_prescriptions.router,
        enterprise_webhooks.router,
        prescriptions.router,
        pathways.router,
        forms.router,
        articles.router,
        run_operations.router,
        enrolment.router,
        patient_exclusion.router,
        run_reports.router,
        payments.router,
        payment_webhooks.router,
        payment_pages.router,
        consultations.router,
        complaints.router,
        complaint_pages.router,
        exams.router,
        exam_interfaces.router,
        exam_pages.router,
        nursing_admin.router,
        nursing_orders.router,
        nursing_pages.router,
        auth.router,
        staff_admin.router,
        patients.router,
        audit.router,
        workbench_sign_in.router,
        workbench_queue.router,
        workbench_alerts.router,
        workbench_enrolment.router,
        workbench_reports.router,
        workbench_review.router,
        workbench_finance.router,
        workbench_patients.router,
        workbench_pathways.router,
        workbench_run_actions.router,
    ):
        app.include_router(router)
    return app


app = create_app()
