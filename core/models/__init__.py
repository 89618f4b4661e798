"""Database tables, grouped by domain; import them from here."""

from core.models.base import JSONType, new_id, utcnow
from core.models.clinical import (
    OPEN_TASK_STATUSES,
    Alert,
    AlertStatus,
    CareTask,
    Encounter,
    FormResponse,
    PathwayRun,
    Patient,
    RunStatus,
    TaskStatus,
)
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
from core.models.operations import AuditEntry, Hospital, InboundEvent, StaffRole, StaffUser
from core.models.pathways import (
    CandidateStatus,
    DefinitionStatus,
    EnrollmentCandidate,
    Pathway,
    PathwayVersion,
)
from core.models.prescriptions import Prescription, PrescriptionEvent

__all__ = [
    "MESSAGE_STATUS_RANK",
    "OPEN_TASK_STATUSES",
    "Alert",
    "AlertStatus",
    "AttemptStatus",
    "AuditEntry",
    "BatchStatus",
    "CandidateStatus",
    "CareTask",
    "DefinitionStatus",
    "DeliveryReport",
    "Encounter",
    "EnrollmentCandidate",
    "FormResponse",
    "Hospital",
    "InboundEvent",
    "JSONType",
    "MessageAttempt",
    "MessageBatch",
    "MessageStatus",
    "MessageTemplate",
    "OutboundMessage",
    "Pathway",
    "PathwayRun",
    "PathwayVersion",
    "Patient",
    "Prescription",
    "PrescriptionEvent",
    "RunStatus",
    "StaffRole",
    "StaffUser",
    "TaskStatus",
    "TemplateOwner",
    "new_id",
    "utcnow",
]
