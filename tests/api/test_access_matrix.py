"""SEC-1 access matrix, generated from the app's route table.

Every route the app serves must be classified in ``api.permissions`` (a staff route declares a
permission, any other is listed as public) and must have a row in ``ROUTES`` below, so a new
route fails here until someone says who may call it. Then, for every staff route:

- without a token: 401;
- every role (department scope) on a record of a patient in scope and one out of scope: a role
  without the permission gets 403 (before any scope check), a role with it the route's normal
  answer in scope and 404 out of scope;
- every data scope (organisation, department, ward, own) on the records of four patients at
  different distances: the normal answer or 404; lists and statistics show exactly the records
  the scope may see.

The expectations come from the explicit tables in this file (``ROUTES``, ``VISIBLE``), not from
``api.permissions`` or ``services.scope``: the table there and the answers here must agree.

Adding a route: one line in ``ROUTES`` (method, path as declared, the roles that may call it,
the kind of record in its path if it reads or changes one, the answer when allowed, a minimal
body). A public route: one line in ``api.permissions.PUBLIC_ROUTES``, nothing here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from api.container import Container
from api.main import create_app
from api.permissions import route_access, unclassified_routes
from api.workbench.auth import COOKIE, COOKIE_PATH, csrf_token
from core.db import SessionFactory, create_engine, session_factory, transaction
from core.models import (
    Alert,
    CareTask,
    Complaint,
    Consultation,
    DataScope,
    Encounter,
    EnrollmentCandidate,
    ExamBooking,
    MessageBatch,
    NursingItem,
    NursingOrder,
    OutboundMessage,
    PathwayRun,
    PathwayVersion,
    Patient,
    PaymentOrder,
    Prescription,
    StaffRole,
)
from harness.databases import clone_database, drop_database
from harness.postgres import PostgresServer
from harness.servers import serve
from harness.settings import TEST_HIS_API_KEY, TEST_WEBHOOK_SECRET, make_settings
from integrations.his import HisClient
from services.staff import create_staff
from simulators.his.app import HisState
from simulators.his.app import create_app as create_his_app

# --- who is where ---------------------------------------------------------------------------

CARDIO, ORTHO = "cardiology", "orthopaedics"
WARD_A, WARD_B = "心内科一病区", "心内科二病区"

# Four patients at increasing distance from the staff (cardiology, ward A, nurse N001 or
# doctor D001): (department, ward, responsible nurse, attending doctor).
PATIENTS = {
    "own": (CARDIO, WARD_A, "N001", "D001"),
    "ward": (CARDIO, WARD_A, "N002", "D002"),
    "dept": (CARDIO, WARD_B, "N003", "D003"),
    "other": (ORTHO, "骨科一病区", "N099", "D099"),
}

# Which patients' records each scope sees (SEC-1), written out.
VISIBLE = {
    "organisation": {"own", "ward", "dept", "other"},
    "department": {"own", "ward", "dept"},
    "ward": {"own", "ward"},
    "own": {"own"},
}
# A batch names no patient: seen through its department only (here each patient's department).
BATCH_VISIBLE = {
    "organisation": {"own", "ward", "dept", "other"},
    "department": {"own", "ward", "dept"},
    "ward": set(),
    "own": set(),
}

NURSE, DOCTOR, CM, ADMIN, PHARM, FIN, INTEG = (
    "nurse",
    "doctor",
    "care_manager",
    "admin",
    "pharmacist",
    "finance",
    "integration",
)
ALL = frozenset({NURSE, DOCTOR, CM, ADMIN, PHARM, FIN, INTEG})
CLINICAL = frozenset({NURSE, DOCTOR, CM})
PLAN = "inpatient-discharge"
NURSING_ITEM = "picc"
LATER = "2030-01-01T02:00:00+00:00"
ANY = None  # allowed: any answer but 401/403/404 (the body is not worth making valid)

Body = dict[str, Any] | Callable[["Seeded"], dict[str, Any]] | None


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    roles: AbstractSet[str]
    target: str | None = None  # the kind of record the path (or body) names
    ok: int | None = 200  # the answer when allowed and in scope; ANY: anything but 401/403/404
    body: Body = None
    params: dict[str, Any] = field(default_factory=dict)
    listing: str | None = None  # the kind of record a list returns (id key: see LISTED_ID)
    headers: dict[str, str] = field(default_factory=dict)


def is_page(row: Row) -> bool:
    return row.path.startswith("/w/")


def _reason(_: Seeded) -> dict[str, Any]:
    return {"reason": "核对"}


ROUTES: list[Row] = [
    # runs, tasks and their reports
    Row("GET", "/api/runs", ALL, listing="run"),
    Row("GET", "/api/runs/{workflow_id}", ALL, "run"),
    Row("GET", "/api/runs/{workflow_id}/outcomes", ALL, "run"),
    Row("GET", "/api/runs/{workflow_id}/audit", ALL, "run"),
    Row("GET", "/api/tasks", ALL, listing="task"),
    Row("GET", "/api/tasks/{task_id}", ALL, "task"),
    # A revisit task has no form answers (404 either way); tests/api/test_form_fhir.py reads one.
    Row("GET", "/api/tasks/{task_id}/questionnaire-response", ALL, "task", 404),
    Row("GET", "/api/pathways/{pathway_id}/potential-losses", ALL, listing="loss"),
    Row(
        "GET",
        "/api/enrollment-candidates",
        ALL,
        params={"status": "enrolled"},
        listing="candidate",
    ),
    # operating runs: no worker runs these workflows, so a permitted change is a 409
    Row("POST", "/api/runs", CLINICAL, "patient", ANY, lambda s: s.start_body),
    Row(
        "POST",
        "/api/runs/{workflow_id}/occurrences/{step_id}/{index}/reschedule",
        CLINICAL,
        "run",
        409,
        {"reason": "改期", "due_at": LATER},
    ),
    Row(
        "POST",
        "/api/runs/{workflow_id}/occurrences/{step_id}/{index}/skip",
        CLINICAL,
        "run",
        409,
        _reason,
    ),
    Row(
        "POST",
        "/api/runs/{workflow_id}/steps",
        CLINICAL,
        "run",
        409,
        {
            "reason": "加访",
            "title": "电话随访",
            "action": {"type": "staff_task", "task_kind": "phone_followup"},
            "due_at": LATER,
        },
    ),
    Row("POST", "/api/runs/{workflow_id}/pause", CLINICAL, "run", 409, _reason),
    Row("POST", "/api/runs/{workflow_id}/resume", CLINICAL, "run", 409, _reason),
    Row("POST", "/api/runs/{workflow_id}/end", CLINICAL, "run", 409, _reason),
    Row(
        "POST",
        "/api/runs/{workflow_id}/migration",
        CLINICAL,
        "run",
        409,
        {"reason": "升级", "to_version": 1, "mapping": {}},
    ),
    Row(
        "POST",
        "/api/tasks/{task_id}/complete",
        CLINICAL,
        "task",
        409,
        {"reason": "已电话随访", "outcome": "completed"},
    ),
    Row("POST", "/api/enrollment-candidates/{candidate_id}/enrol", CLINICAL, "candidate", 409, {}),
    Row(
        "POST",
        "/api/enrollment-candidates/{candidate_id}/decline",
        CLINICAL,
        "candidate",
        409,
        {"note": "患者拒绝"},
    ),
    Row("POST", "/api/patients/{patient_id}/exclusion", CLINICAL, "patient", 200, _reason),
    # alerts
    Row("GET", "/api/alerts", ALL, listing="alert"),
    Row("POST", "/api/alerts/{alert_id}/acknowledge", CLINICAL, "alert", 200),
    # Resolved the first time, already resolved (409) after.
    Row("POST", "/api/alerts/{alert_id}/resolve", CLINICAL, "alert", ANY, {"note": "已处理"}),
    # messages
    Row("GET", "/api/messages", ALL, listing="message"),
    Row("GET", "/api/messages/{message_id}", ALL, "message"),
    Row("GET", "/api/messages/batches/{batch_id}", ALL, "batch"),
    Row("POST", "/api/messages", ALL - {PHARM, FIN}, None, 422, {}),
    Row("POST", "/api/messages/batches", CLINICAL | {ADMIN}, None, 422, {}),
    Row("GET", "/api/message-templates", ALL),
    Row("POST", "/api/message-templates/preview", ALL, None, 422, {}),
    Row("POST", "/api/message-templates", CLINICAL | {ADMIN}, None, 422, {}),
    Row("PUT", "/api/message-templates/{template_id}", CLINICAL | {ADMIN}, None, 422, {}),
    Row("GET", "/api/patients/{patient_id}", CLINICAL | {ADMIN}, "patient"),
    Row("GET", "/api/patients/{patient_id}/trends", CLINICAL | {ADMIN}, "patient"),
    # No form answers in the matrix: the chart is a 404 in scope too (tests/api/test_trends.py).
    Row(
        "GET", "/api/patients/{patient_id}/trends/{name}/chart", CLINICAL | {ADMIN}, "patient", 404
    ),
    Row(
        "POST",
        "/api/patients/{patient_id}/reveal",
        CLINICAL | {PHARM},
        "patient",
        200,
        {"field": "phone"},
    ),
    Row("GET", "/api/patients/{patient_id}/messaging", ALL, "patient"),
    Row("PUT", "/api/patients/{patient_id}/messaging", CLINICAL | {INTEG}, "patient", 200, {}),
    # the pathway designer
    Row("GET", "/api/pathways", ALL),
    Row("POST", "/api/pathways/validate", ALL, None, 200, {}),
    Row("GET", "/api/pathways/{pathway_id}/versions", ALL),
    Row(
        "POST",
        "/api/pathways/{pathway_id}/versions/{version}/preview",
        ALL,
        None,
        200,
        {"anchor_at": LATER},
    ),
    Row("GET", "/api/pathways/{pathway_id}/stats", ALL, listing="plan_stats"),
    Row("POST", "/api/pathways", {CM, ADMIN}, None, 422, {}),
    Row("PUT", "/api/pathways/{pathway_id}/versions/{version}", {CM, ADMIN}, None, ANY, {}),
    Row("POST", "/api/pathways/{pathway_id}/versions/{version}/publish", {CM, ADMIN}, None, ANY),
    Row("PUT", "/api/pathways/{pathway_id}/live", {CM, ADMIN}, None, 422, {}),
    Row("POST", "/api/pathways/{pathway_id}/{change}", {CM, ADMIN}, None, 422, {}),
    # the knowledge base (a platform article: read-only here)
    Row("GET", "/api/articles", ALL),
    Row("GET", "/api/articles/review-queue", {CM, ADMIN}),
    Row("POST", "/api/articles/validate", ALL, None, 200, {}),
    Row("POST", "/api/articles", CLINICAL | {ADMIN}, None, 422, {}),
    Row("GET", "/api/articles/{article_id}/versions", ALL),
    Row("PUT", "/api/articles/{article_id}/versions/{version}", CLINICAL | {ADMIN}, None, 409, {}),
    Row(
        "POST",
        "/api/articles/{article_id}/versions/{version}/submit",
        CLINICAL | {ADMIN},
        None,
        409,
    ),
    Row(
        "POST",
        "/api/articles/{article_id}/versions/{version}/review",
        {CM, ADMIN},
        None,
        409,
        {"approve": True},
    ),
    Row("GET", "/api/articles/{article_id}/versions/{version}/preview", ALL),
    # the form designer (a library form: read-only)
    Row("GET", "/api/forms", ALL),
    Row("POST", "/api/forms/validate", ALL, None, 200, {}),
    Row("POST", "/api/forms/preview", ALL, None, 422, {}),
    Row("GET", "/api/forms/{form_id}/versions", ALL),
    Row("GET", "/api/forms/{form_id}/versions/{version}/preview", ALL),
    Row("GET", "/api/forms/{form_id}/versions/{version}/fhir", ALL),
    Row("POST", "/api/forms/fhir", {CM, ADMIN}, None, 422, {}),
    Row("POST", "/api/forms", {CM, ADMIN}, None, 422, {}),
    Row("PUT", "/api/forms/{form_id}/versions/{version}", {CM, ADMIN}, None, ANY, {}),
    Row("POST", "/api/forms/{form_id}/versions/{version}/publish", {CM, ADMIN}, None, ANY),
    # prescriptions
    Row("GET", "/api/prescriptions/review-queue", {PHARM}, listing="prescription"),
    Row("GET", "/api/prescriptions", {PHARM, ADMIN, DOCTOR}, listing="prescription"),
    Row(
        "GET",
        "/api/prescriptions/stats",
        {PHARM, ADMIN, DOCTOR},
        params={"by": "department"},
        listing="rx_stats",
    ),
    Row("GET", "/api/prescriptions/{prescription_id}", {PHARM, ADMIN, DOCTOR}, "prescription"),
    Row(
        "POST",
        "/api/prescriptions/{prescription_id}/decision",
        {PHARM},
        "prescription",
        409,
        {"round": 1, "outcome": "approve"},
    ),
    # payments and consultations
    Row("GET", "/api/payments/orders", {INTEG, ADMIN, CM, FIN}, listing="order"),
    Row("GET", "/api/payments/orders/{order_id}", {INTEG, ADMIN, CM, FIN}, "order"),
    Row("GET", "/api/payments/attention", {INTEG, ADMIN, CM, FIN}, listing="attention"),
    Row("POST", "/api/payments/orders", {INTEG, ADMIN}, None, 422, {}),
    Row("POST", "/api/payments/orders/{order_id}/pay", {INTEG, ADMIN}, "order", 202),
    Row(
        "POST",
        "/api/payments/orders/{order_id}/refunds",
        {INTEG, ADMIN, FIN},
        "order",
        409,  # the order is still paying
        {"amount_fen": 100, "reason": "退号"},
        headers={"Idempotency-Key": "matrix"},
    ),
    Row("GET", "/api/payments/reconciliations", {ADMIN, FIN}),
    Row("GET", "/api/payments/reconciliations/{bill_date}", {ADMIN, FIN}, None, 404),
    Row("POST", "/api/payments/reconciliations/{bill_date}/run", {ADMIN, FIN}, None, 422),
    Row("POST", "/api/consultations", {INTEG, ADMIN}, None, 422, {}),
    Row("GET", "/api/consultations/{consultation_id}", {INTEG, ADMIN, DOCTOR}, "consultation"),
    Row("POST", "/api/consultations/{consultation_id}/accept", {DOCTOR}, "consultation", 409),
    # complaints and praise (no workflow behind the matrix's cases: a step is a 409)
    Row("GET", "/api/complaints", CLINICAL | {ADMIN}, listing="complaint"),
    Row(
        "GET",
        "/api/complaints/stats",
        CLINICAL | {ADMIN},
        params={"opened_from": "2026-01-01T00:00:00Z", "opened_to": "2099-01-01T00:00:00Z"},
    ),
    Row("POST", "/api/complaints", CLINICAL | {ADMIN}, None, 422, {}),
    Row("GET", "/api/complaints/{complaint_id}", CLINICAL | {ADMIN}, "complaint"),
    Row(
        "POST",
        "/api/complaints/{complaint_id}/acknowledge",
        CLINICAL | {ADMIN},
        "complaint",
        409,
        {},
    ),
    Row(
        "POST",
        "/api/complaints/{complaint_id}/resolve",
        CLINICAL | {ADMIN},
        "complaint",
        409,
        {"outcome": "已致歉"},
    ),
    Row(
        "POST",
        "/api/complaints/{complaint_id}/reassign",
        CLINICAL | {ADMIN},
        "complaint",
        409,
        {"department_code": "orthopaedics", "reason": "涉及骨科"},
    ),
    # physical exams (no workflow behind the matrix's bookings: a review is a 409)
    Row("GET", "/api/exams/consent", CLINICAL | {ADMIN}),
    Row("GET", "/api/exams/catalogue", CLINICAL | {ADMIN}),
    Row("POST", "/api/exams/accounts", CLINICAL, None, 422, {}),
    Row("POST", "/api/exams/invitations", CLINICAL, None, 422, {}),
    Row("POST", "/api/exams/bookings", CLINICAL, None, 422, {}),
    Row("GET", "/api/exams/bookings", CLINICAL | {ADMIN}, listing="booking"),
    Row("GET", "/api/exams/bookings/{booking_id}", CLINICAL | {ADMIN}, "booking"),
    Row("POST", "/api/exams/bookings/{booking_id}/review", {DOCTOR}, "booking", 409, {}),
    Row("GET", "/api/exams/held", CLINICAL | {ADMIN}),
    Row("POST", "/api/exams/mappings", {CM, ADMIN}, None, 422, {}),
    # home nursing: the catalogue and the roster
    Row("GET", "/api/nursing/items", {NURSE, ADMIN, INTEG}),
    Row("PUT", "/api/nursing/items/{code}", {ADMIN}, None, 422, {}),
    Row("GET", "/api/nursing/nurses", {NURSE, ADMIN, INTEG}),
    Row("PUT", "/api/nursing/nurses/{staff_id}", {ADMIN}, None, 404, {}),
    # home nursing: orders (no workflow behind the matrix's orders: a step is a 409)
    Row("POST", "/api/nursing/orders", {INTEG, NURSE}, None, 422, {}),
    Row("POST", "/api/nursing/orders/invitations", {INTEG, NURSE}, None, 422, {}),
    Row("GET", "/api/nursing/orders", {NURSE, ADMIN, INTEG}, listing="nursing"),
    Row(
        "GET",
        "/api/nursing/orders/stats",
        {NURSE, ADMIN, INTEG},
        params={"from": "2026-01-01T00:00:00Z", "to": "2099-01-01T00:00:00Z"},
    ),
    Row("GET", "/api/nursing/orders/{order_id}", {NURSE, ADMIN, INTEG}, "nursing"),
    Row("POST", "/api/nursing/orders/{order_id}/take", {NURSE}, "nursing", 409),
    Row(
        "POST", "/api/nursing/orders/{order_id}/assign", {NURSE}, "nursing", 409, {"nurse_id": "n"}
    ),
    Row(
        "POST",
        "/api/nursing/orders/{order_id}/transfer",
        {NURSE},
        "nursing",
        409,
        {"to_nurse_id": "n", "reason": "临时有事"},
    ),
    Row("POST", "/api/nursing/orders/{order_id}/visit/{step}", {NURSE}, "nursing", 409),
    Row("POST", "/api/nursing/orders/{order_id}/alarm", {NURSE}, "nursing", 409, {}),
    Row(
        "POST",
        "/api/nursing/orders/{order_id}/assessment",
        {NURSE},
        "nursing",
        422,
        {"answers": {}},
    ),
    Row(
        "POST",
        "/api/nursing/orders/{order_id}/signature",
        {INTEG, NURSE},
        "nursing",
        409,
        {"signed_name": "张建国"},
    ),
    Row(
        "POST",
        "/api/nursing/orders/{order_id}/rating",
        {INTEG, NURSE},
        "nursing",
        409,
        {"stars": 5},
    ),
    Row(
        "POST",
        "/api/nursing/orders/{order_id}/cancel",
        {NURSE, ADMIN, INTEG},
        "nursing",
        409,
        {"reason": "不需要了"},
    ),
    # administration
    Row("GET", "/api/hospitals/{code}", {ADMIN}),
    Row("PUT", "/api/hospitals/{code}", {ADMIN}, None, 422, {}),
    Row("GET", "/api/audit", {ADMIN}),
    # staff administration (SEC-5)
    Row("GET", "/api/admin/staff", {ADMIN}),
    Row("GET", "/api/admin/staff/{staff_id}", {ADMIN}, None, 404),
    Row("POST", "/api/admin/staff", {ADMIN}, None, 422, {}),
    Row("PATCH", "/api/admin/staff/{staff_id}", {ADMIN}, None, 404, {}),
    Row("POST", "/api/admin/staff/{staff_id}/deactivate", {ADMIN}, None, 404),
    Row("POST", "/api/admin/staff/{staff_id}/credentials", {ADMIN}, None, 404, {}),
    Row("POST", "/api/auth/totp/enrol", {ADMIN}, None, ANY),
    Row("POST", "/api/auth/totp/confirm", {ADMIN}, None, ANY, {"code": "000000"}),
    # The staff workbench (/w): the session cookie instead of a bearer token, a CSRF token on
    # every form; without a session, the sign-in page (303). A form posted empty is refused
    # with its fields named (422); acknowledging from the page comes back to the list (303).
    Row("GET", "/w/queue", CLINICAL),
    Row("GET", "/w/queue.xlsx", CLINICAL),
    Row("GET", "/w/tasks/{task_id}", CLINICAL, "task"),
    Row("POST", "/w/tasks/{task_id}/complete", CLINICAL, "task", 422, {}),
    Row("GET", "/w/alerts", CLINICAL),
    Row("GET", "/w/alerts.xlsx", CLINICAL),
    Row("POST", "/w/alerts/{alert_id}/acknowledge", CLINICAL, "alert", 303, {}),
    Row("POST", "/w/alerts/{alert_id}/resolve", CLINICAL, "alert", 422, {}),
    Row("GET", "/w/enrolment", CLINICAL),
    Row("GET", "/w/enrolment.xlsx", CLINICAL),
    Row("GET", "/w/enrolment/{candidate_id}", CLINICAL, "candidate"),
    Row("POST", "/w/enrolment/{candidate_id}/enrol", CLINICAL, "candidate", 409, {}),
    Row("POST", "/w/enrolment/{candidate_id}/decline", CLINICAL, "candidate", 422, {}),
    Row("GET", "/w/review", {PHARM}),
    Row("POST", "/w/review/{prescription_id}/decision", {PHARM}, "prescription", 422, {}),
    Row("GET", "/w/finance", {ADMIN, FIN}),
    Row("GET", "/w/finance/attention.xlsx", {ADMIN, FIN}),
    Row("GET", "/w/finance/reconciliations/{bill_date}", {ADMIN, FIN}, None, 404),
    Row(
        "GET",
        "/w/finance/reconciliations/{bill_date}/discrepancies.xlsx",
        {ADMIN, FIN},
        None,
        404,
    ),
    Row("GET", "/w/patients/{patient_id}", CLINICAL | {ADMIN}, "patient"),
    Row("GET", "/w/runs/{workflow_id}", CLINICAL | {ADMIN}, "run"),
    Row("GET", "/w/pathways", ALL),
    Row("GET", "/w/pathways/{pathway_id}", ALL),
    # Version 1 of the library plan is published already: a stale page's second publish.
    Row("POST", "/w/pathways/{pathway_id}/versions/{version}/publish", {CM, ADMIN}, None, 409, {}),
    Row("POST", "/w/runs/{workflow_id}/steps", CLINICAL, "run", 422, {}),
    # The matrix's runs are on version 1 of the only version there is: nothing to move to.
    Row("GET", "/w/runs/{workflow_id}/migration", CLINICAL, "run", 404),
    Row("POST", "/w/runs/{workflow_id}/migration", CLINICAL, "run", 404, {}),
    Row("GET", "/w/reports", ALL),
    Row("GET", "/w/reports/follow-up.xlsx", ALL),
    Row("GET", "/w/reports/work-log.xlsx", ALL),
    Row("GET", "/w/reports/reviews.xlsx", {DOCTOR, PHARM, ADMIN}),
]

# Path parameters that are not the record under test.
FIXED = {
    "pathway_id": PLAN,
    "form_id": "phq-9",
    "article_id": "chd-diet",
    "name": "pain",
    "version": "1",
    "step_id": "day3",
    "index": "0",
    "change": "suspend",
    "template_id": "no-such-template",
    "code": "default",
    "staff_id": "no-such-staff",
    "step": "depart",
}
# Reconciliation: a day never reconciled (404), and for the run a malformed day (422), so no
# test waits on a reconciliation workflow.
BILL_DATES = {"GET": "2020-01-01", "POST": "not-a-date"}
LISTED_ID = {  # the field that names each listed record
    "run": "workflow_id",
    "task": "id",
    "alert": "id",
    "message": "id",
    "prescription": "id",
    "candidate": "id",
    "loss": "task_id",
    "order": "id",
    "attention": "order_id",
    "complaint": "id",
    "booking": "id",
    "nursing": "id",
}


# --- the data --------------------------------------------------------------------------------


@dataclass
class Seeded:
    key: str
    ids: dict[str, str]  # record kind -> id
    his_patient_id: str

    @property
    def start_body(self) -> dict[str, Any]:
        return {"pathway_id": PLAN, "patient_id": self.his_patient_id, "anchor_at": LATER}


@dataclass
class World:
    http: httpx.AsyncClient
    patients: dict[str, Seeded]
    tokens: dict[tuple[str, str], str]  # (role, scope) -> token
    owner: dict[str, str]  # record id -> patient key
    container: Container

    def url(self, row: Row, key: str | None) -> str:
        values = dict(FIXED, bill_date=BILL_DATES.get(row.method, "2020-01-01"))
        if key is not None:
            ids = self.patients[key].ids
            values.update(
                workflow_id=ids["run"],
                task_id=ids["task"],
                alert_id=ids["alert"],
                message_id=ids["message"],
                batch_id=ids["batch"],
                patient_id=ids["patient"],
                prescription_id=ids["prescription"],
                consultation_id=ids["consultation"],
                candidate_id=ids["candidate"],
                complaint_id=ids["complaint"],
                booking_id=ids["booking"],
                order_id=ids["nursing"] if row.target == "nursing" else ids["order"],
            )
        return row.path.format(**values)

    async def call(self, row: Row, key: str | None, token: str | None) -> httpx.Response:
        body = row.body(self.patients[key or "own"]) if callable(row.body) else row.body
        headers = dict(row.headers)
        if is_page(row):
            # A browser: the session in its cookie, the form's CSRF token in the form.
            self.http.cookies.clear()
            if token is not None:
                self.http.cookies.set(COOKIE, token, path=COOKIE_PATH)
            form = None
            if row.method == "POST":
                form = {**(body or {}), "csrf": csrf_token(self.container, token or "")}
            return await self.http.request(
                row.method, self.url(row, key), data=form, params=row.params, headers=headers
            )
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.http.request(
            row.method, self.url(row, key), json=body, params=row.params, headers=headers
        )


async def _seed(sessions: SessionFactory) -> tuple[dict[str, Seeded], dict[str, str]]:
    now = datetime.now(UTC)
    seeded: dict[str, Seeded] = {}
    owner: dict[str, str] = {}
    async with transaction(sessions) as session:
        version = (
            await session.exec(
                select(PathwayVersion).where(
                    PathwayVersion.pathway_id == PLAN, PathwayVersion.version == 1
                )
            )
        ).one()
        session.add(
            NursingItem(
                code=NURSING_ITEM,
                name="PICC导管维护",
                price_fen=20000,
                visit_fee_fen=5000,
                expected_minutes=60,
                assessment_form="home-nursing-assessment",
                updated_by="matrix",
            )
        )
        for n, (key, (department, ward, nurse, doctor)) in enumerate(PATIENTS.items()):
            tag = f"{key}-{uuid.uuid4().hex[:8]}"
            patient = Patient(
                his_patient_id=f"MX{tag}", name=f"矩阵{key}", phone=f"1380013{n:04d}", sex="F"
            )
            session.add(patient)
            await session.flush()
            encounter = Encounter(
                his_encounter_id=f"E{tag}",
                patient_id=patient.id,
                kind="inpatient",
                department_code=department,
                department_name=department,
                ward=ward,
                responsible_nurse=nurse,
                attending_doctor=doctor,
                discharged_at=now - timedelta(days=3),
            )
            session.add(encounter)
            await session.flush()
            run = PathwayRun(
                workflow_id=f"matrix-run-{tag}",
                plan_id=PLAN,
                plan_version=1,
                patient_id=patient.id,
                encounter_id=encounter.id,
                department_code=department,
                anchor_at=now - timedelta(days=3),
                plan_snapshot=version.snapshot or {},
            )
            session.add(run)
            await session.flush()
            task = CareTask(
                id=str(uuid.uuid4()),
                workflow_id=run.workflow_id,
                step_id="revisit",
                patient_id=patient.id,
                plan_id=PLAN,
                department_code=department,
                title="复诊",
                action_type="revisit",
                responsible_role="nurse",
                status="lost",
                due_at=now - timedelta(days=1),
            )
            session.add(task)
            await session.flush()
            alert = Alert(
                kind="abnormal_answer",
                task_id=task.id,
                workflow_id=run.workflow_id,
                patient_id=patient.id,
                department_code=department,
                role="nurse",
                summary="胸痛",
                raised_at=now,
            )
            message = OutboundMessage(
                idempotency_key=f"matrix:{tag}",
                category="followup",
                template="followup_invite",
                department_code=department,
                patient_id=patient.id,
                recipient_phone=patient.phone,
                scheduled_for=now,
            )
            batch = MessageBatch(
                workflow_id=f"matrix-batch-{tag}",
                name="宣教",
                category="education",
                template="education_article",
                recipients=[patient.id],
                total=1,
                created_by="someone",
                department_code=department,
            )
            prescription = Prescription(
                hospital_code="default",
                prescription_no=f"RX{tag}",
                workflow_id=f"matrix-rx-{tag}",
                patient_id=patient.id,
                department_code=department,
                department_name=department,
                doctor_id=doctor,
                doctor_name="医生",
                doses=7,
                review_deadline_at=now + timedelta(minutes=2),
                submitted_at=now,
            )
            order = PaymentOrder(
                hospital_code="default",
                his_order_no=f"ORD{tag}",
                patient_id=patient.id,
                department_code=department,
                department_name=department,
                kind="consultation",
                title="问诊费",
                amount_fen=2000,
                status="paying",
                saga_status="confirming",  # stuck for an hour: on the attention list
                created_by="staff:someone",
                updated_at=now - timedelta(hours=1),
            )
            session.add_all([alert, message, batch, prescription, order])
            await session.flush()
            consultation = Consultation(
                order_id=order.id,
                hospital_code="default",
                patient_id=patient.id,
                department_code=department,
                question="胸闷",
                workflow_id=f"matrix-consult-{tag}",
            )
            candidate = EnrollmentCandidate(
                pathway_id="diabetes-management",
                patient_id=patient.id,
                encounter_id=encounter.id,
                event_ref=f"EVT{tag}",
                department_code=department,
                status="enrolled",  # so enrolling again is a 409 and starts nothing
            )
            complaint = Complaint(
                case_no=f"TS{tag}",
                workflow_id=f"matrix-complaint-{tag}",
                kind="complaint",
                source="staff",
                category="waiting",
                patient_id=patient.id,
                hospital_code="default",
                department_code=department,
                summary="候诊时间太长",
                opened_by="matrix",
                opened_at=now,
            )
            booking = ExamBooking(
                workflow_id=f"matrix-exam-{tag}",
                patient_id=patient.id,
                department_code=department,
                account_no=f"TJ{tag}",
                exam_date=now.date(),
                status="closed",
                requested_by="matrix",
            )
            nursing = NursingOrder(
                workflow_id=f"matrix-nursing-{tag}",
                patient_id=patient.id,
                item_code=NURSING_ITEM,
                department_code=department,
                price_fen=20000,
                visit_fee_fen=5000,
                address="南京西路1号",
                visit_at=now,
            )
            session.add_all([consultation, candidate, complaint, booking, nursing])
            await session.flush()
            ids = {
                "patient": patient.id,
                "run": run.workflow_id,
                "task": task.id,
                "loss": task.id,
                "alert": alert.id,
                "message": message.id,
                "batch": batch.id,
                "prescription": prescription.id,
                "order": order.id,
                "attention": order.id,
                "consultation": consultation.id,
                "candidate": candidate.id,
                "complaint": complaint.id,
                "booking": booking.id,
                "nursing": nursing.id,
            }
            owner.update(dict.fromkeys(ids.values(), key))
            seeded[key] = Seeded(key, ids, patient.his_patient_id)
    return seeded, owner


async def _staff(sessions: SessionFactory) -> dict[tuple[str, str], str]:
    tokens = {}
    async with transaction(sessions) as session:
        for role in StaffRole:
            for scope in DataScope:
                _, token = await create_staff(
                    session,
                    name=f"{role}-{scope}",
                    role=role,
                    department_code=CARDIO,
                    ward=WARD_A,
                    staff_code="N001" if role == StaffRole.NURSE else "D001",
                    data_scope=scope,
                )
                tokens[(role.value, scope.value)] = token
    return tokens


@pytest.fixture(scope="module")
async def world(
    postgres: PostgresServer, pg_template: str, dev_env: WorkflowEnvironment
) -> AsyncIterator[World]:
    name = await clone_database(postgres, pg_template)
    engine = create_engine(postgres.url(name))
    sessions = session_factory(engine)
    app = create_his_app(
        webhook_target="http://127.0.0.1:9",
        webhook_secret=TEST_WEBHOOK_SECRET,
        api_key=TEST_HIS_API_KEY,
        state=HisState.seeded(),
    )
    async with serve(app) as his_url:
        settings = make_settings(
            database_url=postgres.url(name),
            his_base_url=his_url,
            temporal_task_queue=f"matrix-{uuid.uuid4()}",
            temporal_query_timeout_seconds=1.0,
        )
        his = HisClient.create(his_url, TEST_HIS_API_KEY, timeout_seconds=2.0)
        container = Container.build(settings, sessions, dev_env.client, his)
        await container.sync_library()
        patients, owner = await _seed(sessions)
        tokens = await _staff(sessions)
        transport = httpx.ASGITransport(app=create_app(container=container))
        async with httpx.AsyncClient(transport=transport, base_url="http://carepath.test") as http:
            yield World(http, patients, tokens, owner, container)
        await his.close()
    await engine.dispose()
    await drop_database(postgres, name)


# --- the route table is complete -------------------------------------------------------------


def test_every_route_is_classified_and_has_a_row() -> None:
    app = create_app()
    assert unclassified_routes(app) == []
    staff_routes = {(r.method, r.path) for r in route_access(app) if r.permission is not None}
    rows = {(r.method, r.path) for r in ROUTES}
    assert staff_routes - rows == set(), "staff routes without a row in ROUTES"
    assert rows - staff_routes == set(), "rows in ROUTES for routes the app does not serve"
    assert len(rows) == len(ROUTES), "a route has two rows"


# --- the matrix ------------------------------------------------------------------------------


def _expect(row: Row, allowed: bool, visible: bool) -> Callable[[int], bool]:
    if not allowed:
        return lambda code: code == 403
    if row.target is not None and not visible:
        return lambda code: code == 404
    if row.ok is ANY:
        return lambda code: code not in (401, 403, 404)
    return lambda code: code == row.ok


def _visible(row: Row, scope: str, key: str) -> bool:
    table = BATCH_VISIBLE if row.target == "batch" else VISIBLE
    return key in table[scope]


def _listed(row: Row, payload: Any) -> Any:
    if row.listing == "plan_stats":
        return payload["runs"]
    if row.listing == "rx_stats":
        return sum(group["submitted"] for group in payload)
    items = payload["items"] if isinstance(payload, dict) else payload
    return [item[LISTED_ID[row.listing or ""]] for item in items]


async def test_access_matrix(world: World) -> None:
    """All cases in one test, so a failure report lists every wrong answer at once."""
    started = time.monotonic()
    wrong: list[str] = []
    cases = 0

    async def check(row: Row, key: str | None, who: str, token: str | None, ok: Any) -> None:
        nonlocal cases
        cases += 1
        response = await world.call(row, key, token)
        if not ok(response.status_code):
            wrong.append(
                f"{row.method} {row.path} as {who} on {key}: "
                f"{response.status_code} {response.text[:160]}"
            )

    for row in ROUTES:
        # No token: 401 on every staff route; a page sends the browser to sign in.
        signed_out = 303 if is_page(row) else 401
        await check(row, "own", "nobody", None, lambda code, want=signed_out: code == want)
        # Every role, department scope, a patient in scope ('own') and one out ('other').
        for role in sorted(ALL):
            token = world.tokens[(role, "department")]
            for key in ("own", "other") if row.target else (None,):
                visible = key is None or _visible(row, "department", key)
                await check(
                    row, key, f"{role}/department", token, _expect(row, role in row.roles, visible)
                )
        # Every scope, with a role that may call the route (a nurse, whose staff number is the
        # patients' responsible nurse, where nurses may; else one matching attending doctors).
        role = NURSE if NURSE in row.roles else sorted(row.roles)[0]
        for scope in VISIBLE:
            token = world.tokens[(role, scope)]
            if row.target is not None:
                for key in PATIENTS:
                    await check(
                        row,
                        key,
                        f"{role}/{scope}",
                        token,
                        _expect(row, True, _visible(row, scope, key)),
                    )
            elif row.listing is not None:
                cases += 1
                response = await world.call(row, None, token)
                assert response.status_code == 200, response.text
                listed = _listed(row, response.json())
                expected = VISIBLE[scope]
                if isinstance(listed, int):
                    got: Any = listed
                    want: Any = len(expected)
                else:
                    got = {world.owner[i] for i in listed if i in world.owner}
                    want = expected
                if got != want:
                    wrong.append(f"{row.method} {row.path} as {role}/{scope}: {got} != {want}")
    elapsed = time.monotonic() - started
    print(f"access matrix: {cases} cases in {elapsed:.1f} s")  # noqa: T201 - shown with -s
    assert wrong == [], "\n".join(wrong)
