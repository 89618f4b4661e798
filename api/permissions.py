"""Who may do what (SEC-1), in one place.

- ``ROLE_PERMISSIONS``: the one table of which role holds which permission.
- Every staff route declares the one permission it needs:
  ``staff: Annotated[StaffPrincipal, Depends(require(Permission.X))]`` (403 without it).
- Every route that is not a staff route is listed in ``PUBLIC_ROUTES`` with why it needs no
  staff token (signed webhook, signed patient link, health, documentation).
- ``ensure_visible`` / ``ensure_patient_visible``: one record or patient outside the caller's
  data scope is a 404, like one that does not exist (the rules are in ``services.scope``).

``unclassified_routes(app)`` names any route that is neither; tests/api/test_access_matrix.py
fails on it, so a new route cannot escape the table. Adding a route: give it
``Depends(require(Permission.X))`` (a new permission is one enum member plus the roles that hold
it below), or one line in ``PUBLIC_ROUTES``; then one line in the matrix test's ``ROUTES``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from fastapi import FastAPI, HTTPException, status
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import StaffDep, current_staff
from core.models import StaffRole
from services.scope import patient_in_scope, record_in_scope
from services.staff import StaffPrincipal


class Permission(StrEnum):
    RUNS_READ = "runs.read"  # runs, their tasks, outcomes and audit trail; candidates; losses
    RUNS_OPERATE = "runs.operate"  # start, enrol, reschedule/skip/pause/end/migrate, exclude
    ALERTS_READ = "alerts.read"
    ALERTS_ACKNOWLEDGE = "alerts.acknowledge"
    MESSAGES_READ = "messages.read"  # the send log, a message, a batch
    MESSAGES_PUSH = "messages.push"  # one message to a patient or number (MSG-5)
    MESSAGES_BATCH = "messages.batch"  # a batch send (MSG-2)
    TEMPLATES_READ = "templates.read"  # list and preview message templates
    TEMPLATES_EDIT = "templates.edit"
    PREFERENCES_READ = "patients.preferences.read"  # a patient's messaging preferences
    PREFERENCES_WRITE = "patients.preferences.write"
    # Pathways and forms: list, versions, validate, preview, plan statistics.
    PATHWAYS_READ = "pathways.read"
    PATHWAYS_DESIGN = "pathways.design"  # drafts, publish, live version, availability; forms
    PRESCRIPTIONS_READ = "prescriptions.read"
    PRESCRIPTIONS_REVIEW = "prescriptions.review"
    PAYMENTS_READ = "payments.read"  # orders and what needs attention
    PAYMENTS_WRITE = "payments.write"  # create and pay orders
    PAYMENTS_REFUND = "payments.refund"
    PAYMENTS_RECONCILE = "payments.reconcile"
    CONSULTATIONS_READ = "consultations.read"
    CONSULTATIONS_REQUEST = "consultations.request"
    CONSULTATIONS_ACCEPT = "consultations.accept"
    HOSPITALS_ADMIN = "hospitals.admin"
    STAFF_ADMIN = "staff.admin"
    AUDIT_READ = "audit.read"
    PATIENTS_READ = "patients.read"  # one patient's record (audited)
    ARTICLES_WRITE = "articles.write"  # drafts of team and personal articles, submitting them
    ARTICLES_APPROVE = "articles.approve"  # approving (publishing) others' articles
    COMPLAINTS_READ = "complaints.read"  # the complaint queue, a case, the statistics
    COMPLAINTS_HANDLE = "complaints.handle"  # open, acknowledge, resolve, reassign
    EXAMS_READ = "exams.read"  # exam bookings, results, reports, held items (PX)
    EXAMS_BOOK = "exams.book"  # bind a patient's exam account, ask for an exam
    EXAMS_REVIEW = "exams.review"  # tick the optional items of a personalised list
    EXAMS_MAP = "exams.map"  # map a vendor item to a standard one
    NURSING_READ = "nursing.read"  # home-nursing items, nurses, orders
    NURSING_ADMIN = "nursing.admin"  # items and prices, the nurse roster
    NURSING_ORDER = "nursing.order"  # place an order for a patient, sign, rate (their app)
    NURSING_SERVE = "nursing.serve"  # take, transfer, the visit's steps, alarm, nursing record
    NURSING_CANCEL = "nursing.cancel"  # cancel an order (refunded by the rules)
    PATIENTS_REVEAL = (
        "patients.reveal"  # one masked identifier in full (audited; which: disclosure)
    )


P = Permission

# What every staff account may read (as before SEC-1: these routes took any token).
_EVERY_STAFF = {
    P.RUNS_READ,
    P.ALERTS_READ,
    P.MESSAGES_READ,
    P.TEMPLATES_READ,
    P.PREFERENCES_READ,
    P.PATHWAYS_READ,
}
# Clinical work on patients: nurses, doctors and care managers.
_CLINICAL = {
    P.RUNS_OPERATE,
    P.ALERTS_ACKNOWLEDGE,
    P.MESSAGES_PUSH,
    P.MESSAGES_BATCH,
    P.TEMPLATES_EDIT,
    P.PREFERENCES_WRITE,
    P.PATIENTS_READ,
    P.PATIENTS_REVEAL,
    P.COMPLAINTS_READ,
    P.COMPLAINTS_HANDLE,
    P.ARTICLES_WRITE,
}

ROLE_PERMISSIONS: dict[StaffRole, frozenset[Permission]] = {
    StaffRole.NURSE: frozenset(
        _EVERY_STAFF
        | _CLINICAL
        | {
            P.EXAMS_READ,
            P.EXAMS_BOOK,
            P.NURSING_READ,
            P.NURSING_ORDER,
            P.NURSING_SERVE,
            P.NURSING_CANCEL,
        }
    ),
    StaffRole.DOCTOR: frozenset(
        _EVERY_STAFF
        | _CLINICAL
        | {
            P.PRESCRIPTIONS_READ,
            P.CONSULTATIONS_READ,
            P.CONSULTATIONS_ACCEPT,
            P.EXAMS_READ,
            P.EXAMS_BOOK,
            P.EXAMS_REVIEW,
        }
    ),
    StaffRole.CARE_MANAGER: frozenset(
        _EVERY_STAFF
        | _CLINICAL
        | {
            P.PATHWAYS_DESIGN,
            P.PAYMENTS_READ,
            P.ARTICLES_APPROVE,
            P.EXAMS_READ,
            P.EXAMS_BOOK,
            P.EXAMS_MAP,
        }
    ),
    # A delivery problem needs the receiver's phone or address (services.disclosure says which).
    StaffRole.PHARMACIST: frozenset(
        _EVERY_STAFF | {P.PRESCRIPTIONS_READ, P.PRESCRIPTIONS_REVIEW, P.PATIENTS_REVEAL}
    ),
    StaffRole.ADMIN: frozenset(
        _EVERY_STAFF
        | {
            P.MESSAGES_PUSH,
            P.MESSAGES_BATCH,
            P.TEMPLATES_EDIT,
            P.PATHWAYS_DESIGN,
            P.PRESCRIPTIONS_READ,
            P.PAYMENTS_READ,
            P.PAYMENTS_WRITE,
            P.PAYMENTS_REFUND,
            P.PAYMENTS_RECONCILE,
            P.CONSULTATIONS_READ,
            P.CONSULTATIONS_REQUEST,
            P.HOSPITALS_ADMIN,
            P.STAFF_ADMIN,
            P.AUDIT_READ,
            P.PATIENTS_READ,
            # The quality office: every case, and the escalated ones to handle.
            P.COMPLAINTS_READ,
            P.COMPLAINTS_HANDLE,
            P.ARTICLES_WRITE,
            P.ARTICLES_APPROVE,
            P.EXAMS_READ,
            P.EXAMS_MAP,
            P.NURSING_READ,
            P.NURSING_ADMIN,
            P.NURSING_CANCEL,
        }
    ),
    # The finance office: what needs attention, refunds, and reconciling with the provider.
    StaffRole.FINANCE: frozenset(
        _EVERY_STAFF | {P.PAYMENTS_READ, P.PAYMENTS_REFUND, P.PAYMENTS_RECONCILE}
    ),
    # Another hospital system (patient portal, kiosk, HIS) calling with a token.
    StaffRole.INTEGRATION: frozenset(
        _EVERY_STAFF
        | {
            P.MESSAGES_PUSH,
            P.PREFERENCES_WRITE,
            P.PAYMENTS_READ,
            P.PAYMENTS_WRITE,
            P.PAYMENTS_REFUND,
            P.CONSULTATIONS_READ,
            P.CONSULTATIONS_REQUEST,
            P.NURSING_READ,
            P.NURSING_ORDER,
            P.NURSING_CANCEL,
        }
    ),
}


def roles_with(permission: Permission) -> list[StaffRole]:
    return [role for role, held in ROLE_PERMISSIONS.items() if permission in held]


class Require:
    """The dependency a staff route declares: the caller's role must hold ``permission``."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, staff: StaffDep) -> StaffPrincipal:
        if self.permission not in ROLE_PERMISSIONS.get(staff.role, frozenset()):
            roles = ", ".join(sorted(roles_with(self.permission)))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs the permission {self.permission} (roles: {roles})",
            )
        return staff


_REQUIRES = {permission: Require(permission) for permission in Permission}


def require(permission: Permission) -> Require:
    return _REQUIRES[permission]


class Exposure(StrEnum):
    """Why a route takes no staff token."""

    HEALTH = "health and readiness probes"
    DOCS = "API documentation"
    REFERENCE = "public reference data"
    SIGNED_WEBHOOK = "webhook verified by the sender's signature"
    PATIENT_LINK = "patient page behind a signed, expiring link"
    SIGNED_FILE_LINK = "an uploaded file behind a signed, expiring link a patient page gave out"
    SIGN_IN = "signing in, or the caller's own session and password"
    WORKBENCH_ASSET = "the workbench's own scripts and styles (no data)"


PUBLIC_ROUTES: dict[tuple[str, str], Exposure] = {
    ("GET", "/"): Exposure.DOCS,  # redirects to /docs
    ("GET", "/openapi.json"): Exposure.DOCS,
    ("GET", "/docs"): Exposure.DOCS,
    ("GET", "/docs/oauth2-redirect"): Exposure.DOCS,
    ("GET", "/redoc"): Exposure.DOCS,
    ("GET", "/healthz"): Exposure.HEALTH,
    ("GET", "/readyz"): Exposure.HEALTH,
    # The pathway language's JSON Schema: the same for everyone, nothing about patients.
    ("GET", "/api/pathways/schema"): Exposure.REFERENCE,
    ("GET", "/api/forms/schema"): Exposure.REFERENCE,
    ("GET", "/api/articles/schema"): Exposure.REFERENCE,
    ("POST", "/webhooks/his/discharge"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/webhooks/his/events"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/webhooks/his/prescriptions"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/webhooks/his/prescriptions/{prescription_no}/revision"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/webhooks/his/prescriptions/{prescription_no}/cancellation"): (
        Exposure.SIGNED_WEBHOOK
    ),
    ("POST", "/webhooks/his/prescriptions/{prescription_no}/payment"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/webhooks/his/prescriptions/{prescription_no}/refund"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/webhooks/enterprise/{enterprise_code}/status"): Exposure.SIGNED_WEBHOOK,
    # The physical-exam vendor (US-H1..US-H5), signed with its own secret.
    ("POST", "/integrations/exam/us-h1/exam-list"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/integrations/exam/us-h2/guide"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/integrations/exam/us-h3/results"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/integrations/exam/us-h4/report"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/integrations/exam/us-h5/items"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/webhooks/twilio/status"): Exposure.SIGNED_WEBHOOK,
    ("GET", "/webhooks/wechat"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/webhooks/wechat"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/webhooks/wechatpay/notify"): Exposure.SIGNED_WEBHOOK,
    ("POST", "/api/auth/sign-in"): Exposure.SIGN_IN,
    ("POST", "/api/auth/sign-out"): Exposure.SIGN_IN,
    ("GET", "/api/auth/me"): Exposure.SIGN_IN,
    ("POST", "/api/auth/password"): Exposure.SIGN_IN,
    ("GET", "/p/{token}"): Exposure.PATIENT_LINK,
    ("POST", "/p/{token}"): Exposure.PATIENT_LINK,
    ("GET", "/pay/{token}"): Exposure.PATIENT_LINK,
    ("GET", "/c/{token}"): Exposure.PATIENT_LINK,
    ("POST", "/c/{token}"): Exposure.PATIENT_LINK,
    ("GET", "/x/{token}"): Exposure.PATIENT_LINK,
    ("POST", "/x/{token}/bind"): Exposure.PATIENT_LINK,
    ("POST", "/x/{token}/book"): Exposure.PATIENT_LINK,
    ("GET", "/n/{token}"): Exposure.PATIENT_LINK,
    ("POST", "/n/{token}/order"): Exposure.PATIENT_LINK,
    ("POST", "/n/{token}/orders/{order_id}/sign"): Exposure.PATIENT_LINK,
    ("POST", "/n/{token}/orders/{order_id}/rate"): Exposure.PATIENT_LINK,
    ("POST", "/n/{token}/orders/{order_id}/cancel"): Exposure.PATIENT_LINK,
    ("POST", "/n/{token}/orders/{order_id}/complain"): Exposure.PATIENT_LINK,
    ("POST", "/p/{token}/uploads/{question_id}"): Exposure.PATIENT_LINK,
    ("POST", "/p/{token}/draft"): Exposure.PATIENT_LINK,
    ("GET", "/files/{reference}"): Exposure.SIGNED_FILE_LINK,
    # The workbench's sign-in, sign-out and landing page (which goes to the first page the
    # staff member's role may open); every other /w page declares its permission.
    ("GET", "/w/sign-in"): Exposure.SIGN_IN,
    ("POST", "/w/sign-in"): Exposure.SIGN_IN,
    ("POST", "/w/sign-out"): Exposure.SIGN_IN,
    ("GET", "/w"): Exposure.SIGN_IN,
    ("GET", "/w/password"): Exposure.SIGN_IN,
    ("POST", "/w/password"): Exposure.SIGN_IN,
    ("GET", "/w/static/{name}"): Exposure.WORKBENCH_ASSET,
}


@dataclass(frozen=True)
class RouteAccess:
    method: str
    path: str
    permission: Permission | None  # the permission a staff route requires
    exposure: Exposure | None  # why a public route needs no token
    problem: str | None  # why the route is not (or wrongly) classified


def _permissions(dependant: Dependant) -> Iterator[Permission]:
    for sub in dependant.dependencies:
        if isinstance(sub.call, Require):
            yield sub.call.permission
        yield from _permissions(sub)


def _takes_staff_token(dependant: Dependant) -> bool:
    return any(
        sub.call is current_staff or _takes_staff_token(sub) for sub in dependant.dependencies
    )


def route_access(app: FastAPI) -> list[RouteAccess]:
    """Every route of the app, one entry per method, with its classification."""
    table = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = getattr(route, "path", None)
        methods = sorted((getattr(route, "methods", None) or set()) - {"HEAD"})
        if path is None:
            continue
        for method in methods:
            exposure = PUBLIC_ROUTES.get((method, path))
            found = set(_permissions(route.dependant)) if isinstance(route, APIRoute) else set()
            staff = isinstance(route, APIRoute) and _takes_staff_token(route.dependant)
            problem = None
            if exposure is not None and (found or staff):
                problem = "listed as public but takes a staff token"
            elif exposure is None and not found:
                problem = (
                    "takes a staff token without declaring a permission"
                    if staff
                    else "neither declares a permission nor is listed in PUBLIC_ROUTES"
                )
            elif len(found) > 1:
                problem = f"declares several permissions: {sorted(found)}"
            permission = next(iter(found)) if len(found) == 1 else None
            table.append(RouteAccess(method, path, permission, exposure, problem))
    return table


def unclassified_routes(app: FastAPI) -> list[str]:
    return [f"{r.method} {r.path}: {r.problem}" for r in route_access(app) if r.problem]


async def ensure_visible(
    session: AsyncSession,
    staff: StaffPrincipal,
    *,
    patient_id: str | None,
    department_code: str | None,
) -> None:
    """A record outside the caller's data scope is not found, like one that does not exist."""
    if not await record_in_scope(
        session, staff, patient_id=patient_id, department_code=department_code
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")


async def ensure_patient_visible(
    session: AsyncSession, staff: StaffPrincipal, patient_id: str
) -> None:
    if not await patient_in_scope(session, staff, patient_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
