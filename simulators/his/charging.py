"""The HIS charging interface (收费): pending orders per patient, pre-settlement with the
insurance/self-pay split (预结算), settlement confirmation, release of a pre-settled order, refund
check and refund. The insurance part of a refund goes back through the insurance centre, called
by the HIS itself as in the real 医保 set-up (PAY-5).

Every write takes an Idempotency-Key: the same key returns the first answer.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from fastapi import APIRouter, Header, HTTPException, status
from pydantic import BaseModel, Field

from simulators.faults import FaultInjector, add_fault_control

OrderKind = Literal["registration", "prescription", "consultation", "exam", "nursing"]


class ChargeItem(BaseModel):
    name: str
    amount_fen: int = Field(gt=0)
    # The part of the item the insurance catalogue covers (甲类/乙类); the rest is self-pay.
    insurable_fen: int = Field(default=0, ge=0)
    # The fund's share of the insurable part when it differs from the usual ratio (e.g. a
    # chronic-disease outpatient item the fund pays in full).
    fund_ratio: float | None = Field(default=None, ge=0, le=1)


class SimChargeOrder(BaseModel):
    order_no: str
    patient_id: str
    kind: OrderKind = "prescription"
    title: str
    department_code: str = "cardiology"
    department_name: str = "心内科"
    items: list[ChargeItem]
    status: Literal["pending", "locked", "settled", "refunded"] = "pending"
    refundable: bool = True
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def total_fen(self) -> int:
        return sum(i.amount_fen for i in self.items)


class NewOrder(BaseModel):
    patient_id: str
    kind: OrderKind = "prescription"
    title: str = "门诊处方缴费"
    department_code: str = "cardiology"
    department_name: str = "心内科"
    items: list[ChargeItem] = Field(min_length=1)
    order_no: str | None = None


class ServiceCharge(BaseModel):
    """A charge the platform enters for a service it sells (a home-nursing visit): the HIS
    bills it like any other order, so it is paid and refunded through the same interface."""

    patient_id: str
    kind: Literal["nursing"]
    title: str = Field(min_length=1, max_length=100)
    department_code: str
    department_name: str
    amount_fen: int = Field(gt=0)


class PresettleBody(BaseModel):
    patient_id: str
    use_insurance: bool = True


class SettleBody(BaseModel):
    presettle_id: str
    insurance_settlement_id: str | None = None
    transaction_id: str | None = None
    insurance_fen: int = Field(ge=0)
    self_pay_fen: int = Field(ge=0)


class ReleaseBody(BaseModel):
    presettle_id: str
    reason: str = ""


class RefundCheckBody(BaseModel):
    amount_fen: int = Field(gt=0)


class RefundBody(BaseModel):
    refund_no: str
    amount_fen: int = Field(gt=0)
    insurance_fen: int = Field(ge=0)
    self_pay_fen: int = Field(ge=0)
    provider_refund_id: str | None = None


@dataclass
class Presettlement:
    presettle_id: str
    order_no: str
    total_fen: int
    insurance_fen: int
    self_pay_fen: int
    expires_at: datetime
    released: bool = False


@dataclass
class Settlement:
    receipt_no: str
    presettle_id: str
    insurance_settlement_id: str | None
    transaction_id: str | None
    insurance_fen: int
    self_pay_fen: int
    settled_at: datetime


@dataclass
class HisRefund:
    his_refund_no: str
    refund_no: str
    order_no: str
    amount_fen: int
    insurance_fen: int
    self_pay_fen: int
    provider_refund_id: str | None
    insurance_refund_id: str | None
    at: datetime


@dataclass
class InsuranceAccount:
    """How the HIS reaches the insurance centre for the insurance part of refunds."""

    base_url: str
    app_id: str
    app_secret: str


@dataclass
class ChargingState:
    orders: dict[str, SimChargeOrder] = field(default_factory=dict)
    presettlements: dict[str, Presettlement] = field(default_factory=dict)
    settlements: dict[str, Settlement] = field(default_factory=dict)  # by order_no
    refunds: dict[str, HisRefund] = field(default_factory=dict)  # by refund_no
    answers: dict[str, Any] = field(default_factory=dict)  # by idempotency key
    # Patients with a valid insurance registration (参保); others pay everything themselves.
    insured: set[str] = field(default_factory=set)
    insurance_ratio: float = 0.7
    presettle_ttl: timedelta = timedelta(minutes=30)
    faults: FaultInjector = field(
        default_factory=lambda: FaultInjector(scope_prefix="/his/api/v1/charging")
    )
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_no(self, prefix: str) -> str:
        return f"{prefix}{datetime.now(UTC):%Y%m%d}{next(self._counter):05d}{uuid.uuid4().hex[:4]}"

    def add(self, new: NewOrder) -> SimChargeOrder:
        order = SimChargeOrder(
            order_no=new.order_no or self.next_no("SF"), **new.model_dump(exclude={"order_no"})
        )
        self.orders[order.order_no] = order
        return order

    def refunded(self, order_no: str) -> tuple[int, int]:
        mine = [r for r in self.refunds.values() if r.order_no == order_no]
        return sum(r.insurance_fen for r in mine), sum(r.self_pay_fen for r in mine)

    def ledger(self) -> dict[str, int]:
        settled = list(self.settlements.values())
        return {
            "settled_orders": len(settled),
            "settled_fen": sum(s.insurance_fen + s.self_pay_fen for s in settled),
            "refunded_fen": sum(r.amount_fen for r in self.refunds.values()),
        }

    @classmethod
    def seeded(cls) -> ChargingState:
        state = cls(insured={"P0001", "P0002", "P0004"})
        demo = [
            NewOrder(
                patient_id="P0001",
                kind="prescription",
                title="心内科门诊处方",
                items=[
                    ChargeItem(name="阿司匹林肠溶片", amount_fen=1580, insurable_fen=1580),
                    ChargeItem(name="阿托伐他汀钙片", amount_fen=4620, insurable_fen=4620),
                    ChargeItem(name="心电图检查", amount_fen=2500, insurable_fen=0),
                ],
            ),
            NewOrder(
                patient_id="P0002",
                kind="registration",
                title="内分泌科专家号",
                department_code="endocrinology",
                department_name="内分泌科",
                items=[ChargeItem(name="专家门诊诊查费", amount_fen=5000, insurable_fen=0)],
            ),
            NewOrder(
                patient_id="P0004",
                kind="exam",
                title="心脏彩超检查",
                items=[
                    ChargeItem(name="心脏彩色多普勒超声", amount_fen=28000, insurable_fen=28000)
                ],
            ),
        ]
        for order in demo:
            state.add(order)
        return state


def split(state: ChargingState, order: SimChargeOrder, use_insurance: bool) -> tuple[int, int]:
    if not use_insurance or order.patient_id not in state.insured:
        return 0, order.total_fen
    insurance = sum(
        int(i.insurable_fen * (state.insurance_ratio if i.fund_ratio is None else i.fund_ratio))
        for i in order.items
    )
    return insurance, order.total_fen - insurance


def _refuse(code: str, message: str, http_status: int = status.HTTP_409_CONFLICT) -> HTTPException:
    return HTTPException(http_status, {"code": code, "message": message})


def charging_routers(
    state: ChargingState, insurance: InsuranceAccount | None, http: httpx.AsyncClient
) -> tuple[APIRouter, APIRouter]:
    """The protocol router (to mount under the API-key-protected prefix) and the /sim one."""
    api = APIRouter(prefix="/charging")

    def _order(order_no: str) -> SimChargeOrder:
        order = state.orders.get(order_no)
        if order is None:
            raise _refuse("ORDER_NOT_FOUND", "no such order", status.HTTP_404_NOT_FOUND)
        return order

    def _view(order: SimChargeOrder) -> dict[str, Any]:
        return {**order.model_dump(mode="json"), "total_fen": order.total_fen}

    @api.get("/patients/{patient_id}/orders")
    async def patient_orders(patient_id: str, status: str | None = "pending") -> list[Any]:
        return [
            _view(o)
            for o in state.orders.values()
            if o.patient_id == patient_id and (status is None or o.status == status)
        ]

    @api.get("/orders/{order_no}")
    async def get_order(order_no: str) -> dict[str, Any]:
        return _view(_order(order_no))

    @api.post("/orders", status_code=status.HTTP_201_CREATED)
    async def enter_charge(body: ServiceCharge, idempotency_key: str = Header()) -> dict[str, Any]:
        if idempotency_key in state.answers:
            entered: dict[str, Any] = state.answers[idempotency_key]
            return entered
        order = state.add(
            NewOrder(
                patient_id=body.patient_id,
                kind=body.kind,
                title=body.title,
                department_code=body.department_code,
                department_name=body.department_name,
                items=[ChargeItem(name=body.title, amount_fen=body.amount_fen)],
            )
        )
        answer = _view(order)
        state.answers[idempotency_key] = answer
        return answer

    @api.post("/orders/{order_no}/pre-settlements")
    async def presettle(
        order_no: str, body: PresettleBody, idempotency_key: str = Header()
    ) -> dict[str, Any]:
        if idempotency_key in state.answers:
            answer: dict[str, Any] = state.answers[idempotency_key]
            return answer
        order = _order(order_no)
        if order.patient_id != body.patient_id:
            raise _refuse("PATIENT_MISMATCH", "order belongs to another patient", 422)
        now = datetime.now(UTC)
        if order.status in ("settled", "refunded"):
            raise _refuse("ORDER_SETTLED", "order already settled")
        if order.status == "locked":
            holder = next(
                p
                for p in state.presettlements.values()
                if p.order_no == order_no and not p.released
            )
            if holder.expires_at > now:
                raise _refuse("ORDER_LOCKED", "order is being paid elsewhere")
            holder.released = True
        insurance_fen, self_pay_fen = split(state, order, body.use_insurance)
        pre = Presettlement(
            state.next_no("YJS"),
            order_no,
            order.total_fen,
            insurance_fen,
            self_pay_fen,
            now + state.presettle_ttl,
        )
        state.presettlements[pre.presettle_id] = pre
        order.status = "locked"
        answer = {
            "presettle_id": pre.presettle_id,
            "order_no": order_no,
            "total_fen": pre.total_fen,
            "insurance_fen": insurance_fen,
            "self_pay_fen": self_pay_fen,
            "expires_at": pre.expires_at.isoformat(),
        }
        state.answers[idempotency_key] = answer
        return answer

    @api.post("/orders/{order_no}/settlements")
    async def settle(order_no: str, body: SettleBody, idempotency_key: str = Header()) -> Any:
        if idempotency_key in state.answers:
            return state.answers[idempotency_key]
        order = _order(order_no)
        pre = state.presettlements.get(body.presettle_id)
        if pre is None or pre.order_no != order_no:
            raise _refuse("PRESETTLE_NOT_FOUND", "unknown pre-settlement", 404)
        existing = state.settlements.get(order_no)
        if existing is not None:
            if existing.presettle_id == body.presettle_id:
                return {"receipt_no": existing.receipt_no, "duplicate": True}
            raise _refuse("ORDER_SETTLED", "order settled by another payment")
        if pre.released or pre.expires_at <= datetime.now(UTC):
            raise _refuse("PRESETTLE_EXPIRED", "pre-settlement expired or released")
        if (body.insurance_fen, body.self_pay_fen) != (pre.insurance_fen, pre.self_pay_fen):
            raise _refuse("AMOUNT_MISMATCH", "amounts differ from the pre-settlement", 422)
        if body.self_pay_fen and not body.transaction_id:
            raise _refuse("TRANSACTION_REQUIRED", "self-pay part needs a transaction id", 422)
        if body.insurance_fen and not body.insurance_settlement_id:
            raise _refuse("SETTLEMENT_REQUIRED", "insurance part needs a settlement id", 422)
        settlement = Settlement(
            state.next_no("RCPT"),
            body.presettle_id,
            body.insurance_settlement_id,
            body.transaction_id,
            body.insurance_fen,
            body.self_pay_fen,
            datetime.now(UTC),
        )
        state.settlements[order_no] = settlement
        order.status = "settled"
        answer = {"receipt_no": settlement.receipt_no, "duplicate": False}
        state.answers[idempotency_key] = answer
        return answer

    @api.post("/orders/{order_no}/release")
    async def release(order_no: str, body: ReleaseBody) -> dict[str, Any]:
        order = _order(order_no)
        pre = state.presettlements.get(body.presettle_id)
        if pre is None or pre.order_no != order_no:
            raise _refuse("PRESETTLE_NOT_FOUND", "unknown pre-settlement", 404)
        settled = state.settlements.get(order_no)
        if settled is not None and settled.presettle_id == body.presettle_id:
            raise _refuse("ORDER_SETTLED", "a settled order is refunded, not released")
        if not pre.released:
            pre.released = True
            if order.status == "locked":
                order.status = "pending"
        return {"released": True}

    def _refund_split(order_no: str, amount: int) -> tuple[int, int]:
        settled = state.settlements[order_no]
        ins_done, self_done = state.refunded(order_no)
        ins_left = settled.insurance_fen - ins_done
        self_left = settled.self_pay_fen - self_done
        if amount == ins_left + self_left:
            return ins_left, self_left
        total = settled.insurance_fen + settled.self_pay_fen
        insurance = min(ins_left, amount * settled.insurance_fen // total)
        self_pay = amount - insurance
        if self_pay > self_left:
            insurance, self_pay = amount - self_left, self_left
        return insurance, self_pay

    @api.post("/orders/{order_no}/refund-checks")
    async def refund_check(order_no: str, body: RefundCheckBody) -> dict[str, Any]:
        order = _order(order_no)
        settled = state.settlements.get(order_no)
        if settled is None:
            return {"refundable": False, "reason": "订单未结算"}
        if not order.refundable:
            return {"refundable": False, "reason": "药品已发放或检查已执行，不能退费"}
        ins_done, self_done = state.refunded(order_no)
        left = settled.insurance_fen + settled.self_pay_fen - ins_done - self_done
        if body.amount_fen > left:
            return {"refundable": False, "reason": f"可退金额为{left}分", "refundable_fen": left}
        insurance, self_pay = _refund_split(order_no, body.amount_fen)
        return {
            "refundable": True,
            "reason": "",
            "refundable_fen": left,
            "insurance_fen": insurance,
            "self_pay_fen": self_pay,
        }

    async def _insurance_refund(settlement_id: str, refund_no: str, amount: int) -> str:
        if insurance is None:
            raise _refuse("INSURANCE_UNREACHABLE", "no insurance centre configured", 503)
        try:
            token = await http.post(
                f"{insurance.base_url}/api/v1/token",
                json={"app_id": insurance.app_id, "app_secret": insurance.app_secret},
            )
            token.raise_for_status()
            response = await http.post(
                f"{insurance.base_url}/api/v1/settlements/{settlement_id}/refunds",
                json={"refund_no": refund_no, "amount_fen": amount},
                headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            )
        except httpx.HTTPError as exc:
            raise _refuse("INSURANCE_UNREACHABLE", exc.__class__.__name__, 503) from exc
        if response.status_code >= 400:
            raise _refuse("INSURANCE_REFUSED", response.text[:200], 503)
        return str(response.json()["refund_id"])

    @api.post("/orders/{order_no}/refunds")
    async def refund(order_no: str, body: RefundBody, idempotency_key: str = Header()) -> Any:
        if idempotency_key in state.answers:
            return state.answers[idempotency_key]
        order = _order(order_no)
        existing = state.refunds.get(body.refund_no)
        if existing is not None:
            return {
                "his_refund_no": existing.his_refund_no,
                "duplicate": True,
                "insurance_refund_id": existing.insurance_refund_id,
            }
        settled = state.settlements.get(order_no)
        if settled is None:
            raise _refuse("ORDER_NOT_SETTLED", "order not settled")
        if body.insurance_fen + body.self_pay_fen != body.amount_fen:
            raise _refuse("AMOUNT_MISMATCH", "parts do not add up", 422)
        ins_done, self_done = state.refunded(order_no)
        if (
            ins_done + body.insurance_fen > settled.insurance_fen
            or self_done + body.self_pay_fen > settled.self_pay_fen
        ):
            raise _refuse("REFUND_EXCEEDS", "more than was paid", 422)
        insurance_refund_id = None
        if body.insurance_fen:
            assert settled.insurance_settlement_id is not None
            insurance_refund_id = await _insurance_refund(
                settled.insurance_settlement_id, body.refund_no, body.insurance_fen
            )
        record = HisRefund(
            state.next_no("TF"),
            body.refund_no,
            order_no,
            body.amount_fen,
            body.insurance_fen,
            body.self_pay_fen,
            body.provider_refund_id,
            insurance_refund_id,
            datetime.now(UTC),
        )
        state.refunds[body.refund_no] = record
        ins_done, self_done = state.refunded(order_no)
        if ins_done + self_done == settled.insurance_fen + settled.self_pay_fen:
            order.status = "refunded"
        answer = {
            "his_refund_no": record.his_refund_no,
            "duplicate": False,
            "insurance_refund_id": insurance_refund_id,
        }
        state.answers[idempotency_key] = answer
        return answer

    control = APIRouter(prefix="/sim/charging", tags=["simulation control"])

    @control.post("/orders", status_code=status.HTTP_201_CREATED)
    async def new_order(new: NewOrder) -> dict[str, Any]:
        return _view(state.add(new))

    @control.get("/orders")
    async def all_orders() -> list[dict[str, Any]]:
        return [
            {
                **_view(o),
                "settlement": state.settlements.get(o.order_no).__dict__
                if o.order_no in state.settlements
                else None,
            }
            for o in state.orders.values()
        ]

    @control.put("/orders/{order_no}/refundable")
    async def set_refundable(order_no: str, refundable: bool) -> dict[str, Any]:
        order = _order(order_no)
        order.refundable = refundable
        return _view(order)

    @control.put("/insured/{patient_id}")
    async def set_insured(patient_id: str, insured: bool) -> dict[str, bool]:
        (state.insured.add if insured else state.insured.discard)(patient_id)
        return {"insured": insured}

    @control.get("/ledger")
    async def ledger() -> dict[str, int]:
        return state.ledger()

    add_fault_control(control, state.faults)

    return api, control
