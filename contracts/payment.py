"""Inputs, outputs and names of the payment workflows (payment saga, refund saga, online
consultation, daily reconciliation) and their activities. Plain pydantic models; no I/O.

Money is always an integer number of fen (分).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.hospitals import PaymentPolicy

PAYMENT_WORKFLOW = "PaymentSaga"
REFUND_WORKFLOW = "RefundSaga"
CONSULTATION_WORKFLOW = "OnlineConsultation"
RECONCILIATION_WORKFLOW = "PaymentReconciliation"
# Before schedules were per task queue there was one per namespace, under this id.
LEGACY_RECONCILIATION_SCHEDULE_ID = "payments-daily-reconciliation"

QUERY_PAYMENT = "payment"
QUERY_REFUND = "refund"
QUERY_CONSULTATION = "consultation"
SIGNAL_PROVIDER_NOTICE = "provider_notice"
UPDATE_ACCEPT = "accept"

ACTIVITY_PRESETTLE = "payments.presettle"
ACTIVITY_RELEASE = "payments.release"
ACTIVITY_INSURANCE_SETTLE = "payments.insurance_settle"
ACTIVITY_INSURANCE_CANCEL = "payments.insurance_cancel"
ACTIVITY_PROVIDER_CREATE = "payments.provider_create"
ACTIVITY_PROVIDER_QUERY = "payments.provider_query"
ACTIVITY_PROVIDER_CLOSE = "payments.provider_close"
ACTIVITY_PROVIDER_REFUND = "payments.provider_refund"
ACTIVITY_PROVIDER_REFUND_QUERY = "payments.provider_refund_query"
ACTIVITY_HIS_SETTLE = "payments.his_settle"
ACTIVITY_HIS_REFUND_CHECK = "payments.his_refund_check"
ACTIVITY_HIS_REFUND = "payments.his_refund"
ACTIVITY_RECORD_PAYMENT = "payments.record_payment"
ACTIVITY_RECORD_REFUND = "payments.record_refund"
ACTIVITY_OPEN_REFUND = "payments.open_refund"
ACTIVITY_RECORD_CONSULTATION = "payments.record_consultation"
ACTIVITY_RECONCILE = "reconciliation.reconcile"

# The other party said no; retrying cannot change it. Every other failure is retried.
REFUSED = "Refused"

PaymentStatus = Literal[
    "presettling",
    "insurance_settling",
    "awaiting_payment",
    "confirming",
    "settled",
    "compensating",
    "failed",
]
Scenario = Literal["self_pay", "insurance", "mixed"]
RefundStatus = Literal["checking", "refunding", "informing_his", "succeeded", "rejected", "failed"]
ConsultationStatus = Literal[
    "paying",
    "waiting_doctor",
    "accepted",
    "refunding",
    "refunded",
    "refund_failed",
    "payment_failed",
]
# Why a doctor cannot accept a consultation in each state, for the doctor.
CONSULTATION_REFUSALS: dict[str, str] = {
    "paying": "患者尚未完成缴费",
    "accepted": "已有医生接诊",
    "refunding": "已超过接诊时限，问诊已取消",
    "refunded": "已超过接诊时限，问诊已取消并退费",
    "refund_failed": "已超过接诊时限，问诊已取消",
    "payment_failed": "患者缴费未成功，问诊已取消",
}


def payment_workflow_id(order_id: str) -> str:
    return f"payment:{order_id}"


def refund_workflow_id(refund_id: str) -> str:
    return f"refund:{refund_id}"


def consultation_workflow_id(consultation_id: str) -> str:
    return f"consultation:{consultation_id}"


def reconciliation_schedule_id(task_queue: str) -> str:
    """One schedule per deployment (its task queue), as the push outboxes are: a deployment
    sharing the namespace, or a renamed queue, never inherits a run stuck where no worker listens
    (which the schedule's overlap policy would wait on, skipping every day after it)."""
    return f"payments-daily-reconciliation:{task_queue}"


def out_trade_no(order_id: str) -> str:
    """The provider's merchant order number: at most 32 characters, [0-9A-Za-z_-]."""
    return order_id.replace("-", "")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class PaymentInput(_Frozen):
    order_id: str
    hospital_code: str
    # Ours (messages go to this patient) and the HIS's (the HIS and the insurance centre).
    patient_id: str
    his_patient_id: str
    department_code: str | None = None
    his_order_no: str
    kind: str
    title: str
    amount_fen: int = Field(gt=0)
    use_insurance: bool = True
    notify_url: str
    policy: PaymentPolicy = Field(default_factory=PaymentPolicy)
    notify_patient: bool = True


class Split(_Frozen):
    presettle_id: str
    total_fen: int
    insurance_fen: int
    self_pay_fen: int

    @property
    def scenario(self) -> Scenario:
        if self.insurance_fen == 0:
            return "self_pay"
        return "insurance" if self.self_pay_fen == 0 else "mixed"


class ProviderNotice(_Frozen):
    """A verified payment notification, as the API hands it to the saga."""

    notice_id: str
    out_trade_no: str
    trade_state: str
    transaction_id: str | None = None
    amount_fen: int
    success_time: datetime | None = None


class Compensation(_Frozen):
    step: Literal["provider", "insurance", "his"]
    outcome: str
    at: datetime


class Change(_Frozen):
    status: str
    at: datetime
    note: str = ""


class LedgerEntry(_Frozen):
    """A movement of money we know happened, for the books and the reconciliation."""

    party: Literal["provider", "insurance"]
    kind: Literal["payment", "refund", "settle", "cancel"]
    reference: str
    amount_fen: int
    at: datetime
    refund_id: str | None = None


class PaymentState(_Frozen):
    order_id: str
    status: PaymentStatus
    scenario: Scenario | None = None
    split: Split | None = None
    insurance_settlement_id: str | None = None
    out_trade_no: str | None = None
    pay_url: str | None = None
    transaction_id: str | None = None
    paid_at: datetime | None = None
    receipt_no: str | None = None
    deadline_at: datetime | None = None
    failure_reason: str | None = None
    compensations: list[Compensation] = Field(default_factory=list)
    history: list[Change] = Field(default_factory=list)
    polls: int = 0
    notices_accepted: int = 0
    notices_ignored: int = 0
    ledger: list[LedgerEntry] = Field(default_factory=list)


# --- activity payloads ---------------------------------------------------------------------


class PresettleRequest(_Frozen):
    his_order_no: str
    patient_id: str
    use_insurance: bool
    key: str


class ReleaseRequest(_Frozen):
    his_order_no: str
    presettle_id: str
    reason: str


class Released(_Frozen):
    released: bool


class InsuranceSettleRequest(_Frozen):
    his_order_no: str
    patient_id: str
    presettle_id: str
    amount_fen: int
    key: str


class InsuranceSettled(_Frozen):
    settlement_id: str
    amount_fen: int


class InsuranceCancelRequest(_Frozen):
    his_order_no: str
    presettle_id: str
    # None when the settle call's answer was never seen: the centre is asked by order number.
    settlement_id: str | None
    reason: str


class InsuranceCancelled(_Frozen):
    cancelled: list[InsuranceSettled]


class ProviderCreateRequest(_Frozen):
    out_trade_no: str
    description: str
    amount_fen: int
    expires_at: datetime
    notify_url: str
    attach: str


class ProviderCreated(_Frozen):
    pay_url: str


class ProviderQueryRequest(_Frozen):
    out_trade_no: str


class ProviderTrade(_Frozen):
    out_trade_no: str
    # NOTPAY, SUCCESS, CLOSED, REFUND, PAYERROR; NOT_FOUND when the provider has no such order.
    trade_state: str
    transaction_id: str | None = None
    amount_fen: int = 0
    success_time: datetime | None = None


class ProviderRefundRequest(_Frozen):
    out_trade_no: str
    out_refund_no: str
    refund_fen: int
    total_fen: int
    reason: str


class ProviderRefunded(_Frozen):
    refund_id: str
    out_refund_no: str
    status: str
    amount_fen: int
    success_time: datetime | None = None


class ProviderRefundQuery(_Frozen):
    out_refund_no: str


class HisSettleRequest(_Frozen):
    his_order_no: str
    presettle_id: str
    insurance_settlement_id: str | None
    transaction_id: str | None
    insurance_fen: int
    self_pay_fen: int
    key: str


class HisSettled(_Frozen):
    receipt_no: str


class RefundCheckRequest(_Frozen):
    his_order_no: str
    amount_fen: int


class RefundCheckResult(_Frozen):
    refundable: bool
    reason: str = ""
    insurance_fen: int = 0
    self_pay_fen: int = 0


class HisRefundRequest(_Frozen):
    his_order_no: str
    refund_id: str
    amount_fen: int
    insurance_fen: int
    self_pay_fen: int
    provider_refund_id: str | None
    key: str


class HisRefunded(_Frozen):
    his_refund_no: str


class RecordPayment(_Frozen):
    input: PaymentInput
    state: PaymentState
    seq: int
    at: datetime


# --- refunds -------------------------------------------------------------------------------


class RefundInput(_Frozen):
    refund_id: str
    order_id: str
    hospital_code: str
    patient_id: str
    department_code: str | None = None
    his_order_no: str
    title: str
    amount_fen: int = Field(gt=0)
    reason: str
    requested_by: str
    # The order's self-pay trade at the provider, if any.
    out_trade_no: str | None = None
    self_pay_total_fen: int = 0
    policy: PaymentPolicy = Field(default_factory=PaymentPolicy)
    notify_patient: bool = True


class RefundState(_Frozen):
    refund_id: str
    order_id: str
    status: RefundStatus
    amount_fen: int
    insurance_fen: int = 0
    self_pay_fen: int = 0
    provider_refund_id: str | None = None
    his_refund_no: str | None = None
    reason: str | None = None
    history: list[Change] = Field(default_factory=list)
    ledger: list[LedgerEntry] = Field(default_factory=list)


class RecordRefund(_Frozen):
    input: RefundInput
    state: RefundState
    seq: int
    at: datetime


class OpenRefund(_Frozen):
    """Reserves a refund on the order (a system-initiated one, e.g. PAY-7)."""

    refund_id: str
    order_id: str
    amount_fen: int | None  # None: everything still refundable
    reason: str
    requested_by: str


class OpenedRefund(_Frozen):
    input: RefundInput | None  # None: nothing left to refund


# --- online consultation (PAY-7) -----------------------------------------------------------


class ConsultationInput(_Frozen):
    consultation_id: str
    payment: PaymentInput
    accept_within_seconds: int = Field(ge=10, le=7 * 86_400)


class Acceptance(_Frozen):
    doctor_id: str
    doctor_name: str = ""
    at: datetime


class ConsultationState(_Frozen):
    consultation_id: str
    order_id: str
    status: ConsultationStatus
    accept_deadline_at: datetime | None = None
    accepted_by: str | None = None
    accepted_at: datetime | None = None
    refund_id: str | None = None
    note: str | None = None


class RecordConsultation(_Frozen):
    state: ConsultationState
    seq: int
    at: datetime


# --- reconciliation (PAY-8) ----------------------------------------------------------------


class ReconcileInput(_Frozen):
    # None: the day before the run's start, in the deployment's time zone (the schedule's case).
    bill_date: date | None = None
    timezone: str = "Asia/Shanghai"


class ReconcileRequest(_Frozen):
    bill_date: date
    timezone: str


class ReconcileSummary(_Frozen):
    bill_date: date
    provider_lines: int
    platform_entries: int
    matched: int
    discrepancies: int
    provider_net_fen: int
    platform_net_fen: int
