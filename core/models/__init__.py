"""Database tables, grouped by domain; import them from here."""

# Registers the flush hook that numbers and chains every new AuditEntry (SEC-2).
import core.audit_chain  # noqa: F401
from core.models.articles import ArticleDocument, ArticleOwner, ArticleStatus, ArticleVersion
from core.models.base import new_id, utcnow
from core.models.clinical import (
    Alert,
    AlertStatus,
    CareTask,
    Encounter,
    FormDraft,
    FormResponse,
    PathwayRun,
    Patient,
    RunStatus,
    TaskStatus,
)
from core.models.complaints import Complaint
from core.models.forms import FormDocument, FormVersion
from core.models.messaging import (
    MESSAGE_STATUS_RANK,
    AttemptStatus,
    BatchStatus,
    DeliveryReport,
    MessageAttempt,
    MessageBatch,
    MessageStatus,
    MessageTemplate,
    OutboundMessage,
    TemplateOwner,
)
from core.models.operations import (
    AuditEntry,
    DataScope,
    Hospital,
    InboundEvent,
    StaffRole,
    StaffSession,
    StaffUser,
)
from core.models.pathways import (
    CandidateStatus,
    DefinitionStatus,
    EnrollmentCandidate,
    Pathway,
    PathwayVersion,
)
from core.models.payments import (
    Consultation,
    Discrepancy,
    LedgerEntryRow,
    PaymentEvent,
    PaymentOrder,
    PaymentRefund,
    Reconciliation,
)
from core.models.prescriptions import Prescription, PrescriptionEvent
from core.models.uploads import Upload

__all__ = [
    "MESSAGE_STATUS_RANK",
    "Alert",
    "AlertStatus",
    "ArticleDocument",
    "ArticleOwner",
    "ArticleStatus",
    "ArticleVersion",
    "AttemptStatus",
    "AuditEntry",
    "BatchStatus",
    "CandidateStatus",
    "CareTask",
    "Complaint",
    "Consultation",
    "DataScope",
    "DefinitionStatus",
    "DeliveryReport",
    "Discrepancy",
    "Encounter",
    "EnrollmentCandidate",
    "FormDocument",
    "FormDraft",
    "FormResponse",
    "FormVersion",
    "Hospital",
    "InboundEvent",
    "LedgerEntryRow",
    "MessageAttempt",
    "MessageBatch",
    "MessageStatus",
    "MessageTemplate",
    "OutboundMessage",
    "Pathway",
    "PathwayRun",
    "PathwayVersion",
    "Patient",
    "PaymentEvent",
    "PaymentOrder",
    "PaymentRefund",
    "Prescription",
    "PrescriptionEvent",
    "Reconciliation",
    "RunStatus",
    "StaffRole",
    "StaffSession",
    "StaffUser",
    "TaskStatus",
    "TemplateOwner",
    "Upload",
    "new_id",
    "utcnow",
]
