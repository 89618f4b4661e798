"""A payment provider simulator shaped like WeChat Pay API v3 (H5 payments).

Protocol as the real one: requests authenticated by the merchant's RSA signature
(``WECHATPAY2-SHA256-RSA2048``), answers and notifications signed with the platform key
(``Wechatpay-Signature`` over timestamp, nonce and body), notification resources encrypted with
AEAD_AES_256_GCM under the APIv3 key; create order, query, close, refund (answered
synchronously), refund query and the daily trade bill. Amounts are integers in fen, as in v3.

A cashier page (``/sim/cashier/<out_trade_no>``) stands in for the phone's payment sheet: paying
there marks the trade paid and sends the notification, subject to callback faults (dropped,
duplicated, delayed, hence out of order). The crypto here is written independently of the
platform's client on purpose, so that a bug in one is not mirrored in the other.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, ValidationError

from simulators.faults import FaultInjector, FaultPlan, add_fault_control, install

CST = timezone(timedelta(hours=8))
TradeState = Literal["NOTPAY", "SUCCESS", "CLOSED", "REFUND", "PAYERROR"]


class CallbackFaults(BaseModel):
    seed: int | None = None
    drop_rate: float = Field(default=0.0, ge=0, le=1)
    duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    delay_ms: int = Field(default=0, ge=0, le=600_000)
    delay_jitter_ms: int = Field(default=0, ge=0, le=600_000)
    # The platform's answer is retried at these intervals when it is not 2xx (WeChat: 15s, ...).
    retry_seconds: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0, 5.0])


@dataclass
class SimRefund:
    refund_id: str
    out_refund_no: str
    out_trade_no: str
    amount_fen: int
    reason: str
    status: Literal["SUCCESS", "PROCESSING", "ABNORMAL"]
    success_time: datetime


@dataclass
class SimTrade:
    out_trade_no: str
    description: str
    amount_fen: int
    notify_url: str
    time_expire: datetime
    attach: str
    state: TradeState = "NOTPAY"
    transaction_id: str | None = None
    success_time: datetime | None = None
    refunds: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Notice:
    notice_id: str
    out_trade_no: str
    body: bytes
    deliveries: list[int | None] = field(default_factory=list)


@dataclass
class WeChatPayState:
    mchid: str
    appid: str
    apiv3_key: bytes
    merchant_public_key: RSAPublicKey
    platform_private_key: RSAPrivateKey
    platform_serial: str
    public_url: str
    trades: dict[str, SimTrade] = field(default_factory=dict)
    refunds: dict[str, SimRefund] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)
    bills: dict[str, bytes] = field(default_factory=dict)
    callbacks: CallbackFaults = field(default_factory=CallbackFaults)
    faults: FaultInjector = field(default_factory=lambda: FaultInjector(scope_prefix="/v3"))
    rejected_signatures: int = 0
    # Refund answers say PROCESSING for the next N refunds (the query then says SUCCESS).
    processing_refunds: int = 0

    def ledger(self) -> dict[str, int]:
        paid = sum(t.amount_fen for t in self.trades.values() if t.transaction_id)
        refunded = sum(r.amount_fen for r in self.refunds.values() if r.status != "ABNORMAL")
        return {
            "paid_fen": paid,
            "refunded_fen": refunded,
            "net_fen": paid - refunded,
            "paid_trades": sum(1 for t in self.trades.values() if t.transaction_id),
            "refunds": len(self.refunds),
        }


class Amount(BaseModel):
    total: int
    currency: str = "CNY"


class CreateOrder(BaseModel):
    appid: str
    mchid: str
    description: str = Field(max_length=127)
    out_trade_no: str = Field(min_length=6, max_length=32)
    # Optional in the real API: an order without one can be paid for two hours.
    time_expire: datetime | None = None
    notify_url: str
    amount: Amount
    attach: str = ""
    scene_info: dict[str, Any] = Field(default_factory=dict)


class CloseOrder(BaseModel):
    mchid: str


class RefundAmount(BaseModel):
    refund: int
    total: int
    currency: str = "CNY"


class CreateRefund(BaseModel):
    out_trade_no: str
    out_refund_no: str = Field(min_length=1, max_length=64)
    reason: str = ""
    amount: RefundAmount


DEFAULT_ORDER_LIFETIME = timedelta(hours=2)


def _error(http_status: int, code: str, message: str) -> HTTPException:
    return HTTPException(http_status, {"code": code, "message": message})


def create_app(state: WeChatPayState) -> FastAPI:
    http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
    tasks: set[asyncio.Task[None]] = set()
    rng = FaultInjector().random  # replaced when callback faults are set

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for task in list(tasks):
            task.cancel()
        await http.aclose()

    app = FastAPI(title="Payment provider simulator (WeChat Pay v3)", lifespan=lifespan)
    app.state.wechatpay = state
    install(app, state.faults)

    # --- signatures ------------------------------------------------------------------------

    def _platform_sign(message: bytes) -> str:
        signature = state.platform_private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    def _signed(body: bytes, status_code: int = 200) -> Response:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        headers = {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": state.platform_serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
            "Wechatpay-Signature": _platform_sign(
                f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
            ),
            "Request-ID": uuid.uuid4().hex,
        }
        media = "application/json" if body else None
        return Response(body, status_code, headers=headers, media_type=media)

    def _json(data: Any, status_code: int = 200) -> Response:
        return _signed(json.dumps(data, ensure_ascii=False).encode(), status_code)

    # Errors as WeChat Pay answers them: top-level {"code", "message"}, signed like any answer;
    # a body that does not fit the request's schema is a 400 PARAM_ERROR naming the field.
    @app.exception_handler(HTTPException)
    async def _refusal(_: Request, exc: HTTPException) -> Response:
        if isinstance(exc.detail, dict):
            return _json(exc.detail, exc.status_code)
        return _json({"code": "SYSTEM_ERROR", "message": str(exc.detail)}, exc.status_code)

    @app.exception_handler(ValidationError)
    async def _bad_body(_: Request, exc: ValidationError) -> Response:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return _json({"code": "PARAM_ERROR", "message": f"{where}: {first['msg']}"}, 400)

    async def _authenticate(request: Request) -> bytes:
        body = await request.body()
        header = request.headers.get("authorization", "")
        scheme, _, params = header.partition(" ")
        fields = {}
        for part in params.split(","):
            key, _, value = part.strip().partition("=")
            fields[key] = value.strip('"')
        try:
            if scheme != "WECHATPAY2-SHA256-RSA2048" or fields.get("mchid") != state.mchid:
                raise ValueError("scheme or merchant")
            if abs(time.time() - int(fields["timestamp"])) > 300:
                raise ValueError("timestamp")
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            message = (
                (
                    f"{request.method}\n{target}\n{fields['timestamp']}\n{fields['nonce_str']}\n"
                ).encode()
                + body
                + b"\n"
            )
            state.merchant_public_key.verify(
                base64.b64decode(fields["signature"]),
                message,
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (KeyError, ValueError, InvalidSignature) as exc:
            state.rejected_signatures += 1
            raise _error(401, "SIGN_ERROR", "签名错误") from exc
        return body

    # --- notifications ---------------------------------------------------------------------

    def _notice(trade: SimTrade) -> Notice:
        resource = _trade_view(trade)
        nonce = secrets.token_hex(6)
        ciphertext = AESGCM(state.apiv3_key).encrypt(
            nonce.encode(), json.dumps(resource, ensure_ascii=False).encode(), b"transaction"
        )
        notice_id = str(uuid.uuid4())
        body = {
            "id": notice_id,
            "create_time": datetime.now(CST).isoformat(timespec="seconds"),
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": "transaction",
                "nonce": nonce,
            },
        }
        notice = Notice(notice_id, trade.out_trade_no, json.dumps(body).encode())
        state.notices.append(notice)
        return notice

    async def _deliver(notice: Notice, url: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        for wait in [0.0, *state.callbacks.retry_seconds]:
            if wait:
                await asyncio.sleep(wait)
            signed = _signed(notice.body)
            headers = {k: v for k, v in signed.headers.items() if k.lower().startswith("wechatpay")}
            try:
                response = await http.post(
                    url,
                    content=notice.body,
                    headers={**headers, "Content-Type": "application/json"},
                )
                notice.deliveries.append(response.status_code)
                if response.status_code < 300:
                    return
            except httpx.HTTPError:
                notice.deliveries.append(None)

    def _schedule(notice: Notice, url: str, *, copies: int = 1, faults: bool = True) -> None:
        plan = state.callbacks
        if faults and rng.random() < plan.drop_rate:
            notice.deliveries.append(-1)  # dropped: the platform must find out by polling
            return
        if faults and rng.random() < plan.duplicate_rate:
            copies += 1
        for _ in range(copies):
            delay = 0.0
            if faults:
                delay = (plan.delay_ms + rng.uniform(0, plan.delay_jitter_ms)) / 1000
            task = asyncio.create_task(_deliver(notice, url, delay))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    # --- the v3 API ------------------------------------------------------------------------

    def _trade_view(trade: SimTrade) -> dict[str, Any]:
        view: dict[str, Any] = {
            "appid": state.appid,
            "mchid": state.mchid,
            "out_trade_no": trade.out_trade_no,
            "trade_type": "MWEB",
            "trade_state": trade.state,
            "trade_state_desc": {
                "NOTPAY": "未支付",
                "SUCCESS": "支付成功",
                "CLOSED": "已关闭",
                "REFUND": "转入退款",
                "PAYERROR": "支付失败",
            }[trade.state],
            "attach": trade.attach,
            "amount": {"total": trade.amount_fen, "currency": "CNY"},
        }
        if trade.transaction_id:
            assert trade.success_time is not None
            view["transaction_id"] = trade.transaction_id
            view["success_time"] = trade.success_time.astimezone(CST).isoformat()
            view["amount"]["payer_total"] = trade.amount_fen
            view["payer"] = {"openid": "oSimulatedPayer0000000000000"}
        return view

    def _refund_view(refund: SimRefund) -> dict[str, Any]:
        trade = state.trades[refund.out_trade_no]
        return {
            "refund_id": refund.refund_id,
            "out_refund_no": refund.out_refund_no,
            "transaction_id": trade.transaction_id,
            "out_trade_no": refund.out_trade_no,
            "channel": "ORIGINAL",
            "status": refund.status,
            "success_time": refund.success_time.astimezone(CST).isoformat(),
            "create_time": refund.success_time.astimezone(CST).isoformat(),
            "amount": {
                "refund": refund.amount_fen,
                "total": trade.amount_fen,
                "payer_refund": refund.amount_fen,
                "currency": "CNY",
            },
        }

    api = APIRouter(prefix="/v3")

    @api.post("/pay/transactions/h5")
    async def create_order(request: Request) -> Response:
        order = CreateOrder.model_validate_json(await _authenticate(request))
        if order.mchid != state.mchid or order.appid != state.appid:
            raise _error(400, "PARAM_ERROR", "mchid/appid 不匹配")
        if order.amount.total <= 0:
            raise _error(400, "PARAM_ERROR", "金额必须大于0")
        trade = state.trades.get(order.out_trade_no)
        if trade is None:
            trade = SimTrade(
                order.out_trade_no,
                order.description,
                order.amount.total,
                order.notify_url,
                order.time_expire or datetime.now(UTC) + DEFAULT_ORDER_LIFETIME,
                order.attach,
            )
            state.trades[trade.out_trade_no] = trade
        elif trade.amount_fen != order.amount.total:
            raise _error(400, "INVALID_REQUEST", "商户订单号重复")
        elif trade.state != "NOTPAY":
            raise _error(400, "ORDERPAID" if trade.transaction_id else "ORDER_CLOSED", "订单状态")
        url = f"{state.public_url.rstrip('/')}/sim/cashier/{trade.out_trade_no}"
        return _json({"h5_url": url})

    @api.get("/pay/transactions/out-trade-no/{out_trade_no}")
    async def query(out_trade_no: str, request: Request, mchid: str = Query()) -> Response:
        await _authenticate(request)
        trade = state.trades.get(out_trade_no)
        if trade is None or mchid != state.mchid:
            raise _error(404, "ORDER_NOT_EXIST", "订单不存在")
        return _json(_trade_view(trade))

    @api.post("/pay/transactions/out-trade-no/{out_trade_no}/close")
    async def close(out_trade_no: str, request: Request) -> Response:
        CloseOrder.model_validate_json(await _authenticate(request))
        trade = state.trades.get(out_trade_no)
        if trade is None:
            raise _error(404, "ORDER_NOT_EXIST", "订单不存在")
        if trade.transaction_id:
            raise _error(400, "ORDERPAID", "订单已支付")
        trade.state = "CLOSED"
        return _signed(b"", 204)

    @api.post("/refund/domestic/refunds")
    async def refund(request: Request) -> Response:
        body = CreateRefund.model_validate_json(await _authenticate(request))
        existing = state.refunds.get(body.out_refund_no)
        if existing is not None:
            if existing.out_trade_no != body.out_trade_no:
                raise _error(400, "INVALID_REQUEST", "退款单号重复")
            return _json(_refund_view(existing))
        trade = state.trades.get(body.out_trade_no)
        if trade is None:
            raise _error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if not trade.transaction_id:
            raise _error(400, "INVALID_REQUEST", "订单未支付")
        if body.amount.total != trade.amount_fen:
            raise _error(400, "PARAM_ERROR", "订单金额与原订单不一致")
        done = sum(state.refunds[r].amount_fen for r in trade.refunds)
        if body.amount.refund <= 0 or done + body.amount.refund > trade.amount_fen:
            raise _error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        processing = state.processing_refunds > 0
        state.processing_refunds -= 1 if processing else 0
        record = SimRefund(
            refund_id=f"50{int(time.time() * 1000)}{secrets.randbelow(10**6):06d}",
            out_refund_no=body.out_refund_no,
            out_trade_no=trade.out_trade_no,
            amount_fen=body.amount.refund,
            reason=body.reason,
            status="PROCESSING" if processing else "SUCCESS",
            success_time=datetime.now(UTC),
        )
        state.refunds[record.out_refund_no] = record
        trade.refunds.append(record.out_refund_no)
        trade.state = "REFUND"
        view = _refund_view(record)
        if processing:
            record.status = "SUCCESS"  # the next query finds it done
        return _json(view)

    @api.get("/refund/domestic/refunds/{out_refund_no}")
    async def refund_query(out_refund_no: str, request: Request) -> Response:
        await _authenticate(request)
        record = state.refunds.get(out_refund_no)
        if record is None:
            raise _error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return _json(_refund_view(record))

    @api.get("/bill/tradebill")
    async def tradebill(request: Request, bill_date: Annotated[date, Query()]) -> Response:
        await _authenticate(request)
        content = _bill(bill_date)
        token = secrets.token_urlsafe(12)
        state.bills[token] = content
        download = f"{state.public_url.rstrip('/')}/v3/billdownload/file?token={token}"
        return _json(
            {
                "hash_type": "SHA1",
                "hash_value": hashlib.sha1(content).hexdigest(),  # noqa: S324 - the v3 protocol's
                "download_url": download,
            }
        )

    @api.get("/billdownload/file")
    async def download(request: Request, token: str = Query()) -> Response:
        await _authenticate(request)
        content = state.bills.get(token)
        if content is None:
            raise _error(404, "RESOURCE_NOT_EXISTS", "账单不存在")
        return Response(content, media_type="text/csv; charset=utf-8")

    def _yuan(fen: int) -> str:
        return f"{Decimal(fen) / 100:.2f}"

    def _bill(day: date) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            [
                "交易时间",
                "公众账号ID",
                "商户号",
                "微信订单号",
                "商户订单号",
                "交易类型",
                "交易状态",
                "货币种类",
                "应结订单金额",
                "微信退款单号",
                "商户退款单号",
                "退款金额",
                "退款状态",
                "商品名称",
                "商户数据包",
            ]
        )
        rows = paid = refunded = 0
        for trade in state.trades.values():
            if trade.success_time and trade.success_time.astimezone(CST).date() == day:
                writer.writerow(
                    [
                        f"`{trade.success_time.astimezone(CST):%Y-%m-%d %H:%M:%S}",
                        f"`{state.appid}",
                        f"`{state.mchid}",
                        f"`{trade.transaction_id}",
                        f"`{trade.out_trade_no}",
                        "`MWEB",
                        "`SUCCESS",
                        "`CNY",
                        f"`{_yuan(trade.amount_fen)}",
                        "`0",
                        "`0",
                        "`0.00",
                        "`",
                        f"`{trade.description}",
                        f"`{trade.attach}",
                    ]
                )
                rows, paid = rows + 1, paid + trade.amount_fen
        for record in state.refunds.values():
            if record.success_time.astimezone(CST).date() != day:
                continue
            trade = state.trades[record.out_trade_no]
            writer.writerow(
                [
                    f"`{record.success_time.astimezone(CST):%Y-%m-%d %H:%M:%S}",
                    f"`{state.appid}",
                    f"`{state.mchid}",
                    f"`{trade.transaction_id}",
                    f"`{trade.out_trade_no}",
                    "`MWEB",
                    "`REFUND",
                    "`CNY",
                    "`0.00",
                    f"`{record.refund_id}",
                    f"`{record.out_refund_no}",
                    f"`{_yuan(record.amount_fen)}",
                    f"`{record.status}",
                    f"`{trade.description}",
                    f"`{trade.attach}",
                ]
            )
            rows, refunded = rows + 1, refunded + record.amount_fen
        writer.writerow(["总交易单数", "应结订单总金额", "退款总金额"])
        writer.writerow([f"`{rows}", f"`{_yuan(paid)}", f"`{_yuan(refunded)}"])
        return out.getvalue().encode("utf-8")

    # --- the patient's side and the control API --------------------------------------------

    control = APIRouter(prefix="/sim", tags=["simulation control"])

    def _trade(out_trade_no: str) -> SimTrade:
        trade = state.trades.get(out_trade_no)
        if trade is None:
            raise _error(404, "ORDER_NOT_EXIST", "订单不存在")
        return trade

    def _pay(trade: SimTrade) -> dict[str, Any]:
        if trade.state == "CLOSED":
            raise _error(status.HTTP_409_CONFLICT, "ORDER_CLOSED", "订单已关闭")
        if trade.time_expire <= datetime.now(UTC):
            raise _error(status.HTTP_409_CONFLICT, "ORDER_EXPIRED", "订单已过期")
        if trade.transaction_id is None:
            trade.state = "SUCCESS"
            trade.transaction_id = f"42000{int(time.time() * 1000)}{secrets.randbelow(10**6):06d}"
            trade.success_time = datetime.now(UTC)
            _schedule(_notice(trade), trade.notify_url)
        return _trade_view(trade)

    @control.get("/cashier/{out_trade_no}", response_class=HTMLResponse)
    async def cashier(out_trade_no: str) -> str:
        trade = _trade(out_trade_no)
        return (
            "<!doctype html><html lang='zh-CN'><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>微信支付</title><h1>微信支付（模拟）</h1><p>{trade.description}</p>"
            f"<p id='amount'>¥{_yuan(trade.amount_fen)}</p>"
            f"<form method='post' action='/sim/cashier/{out_trade_no}'>"
            "<button type='submit'>确认支付</button></form></html>"
        )

    @control.post("/cashier/{out_trade_no}", response_class=HTMLResponse)
    async def cashier_pay(out_trade_no: str) -> str:
        try:
            _pay(_trade(out_trade_no))
        except HTTPException as exc:
            return f"<!doctype html><meta charset='utf-8'><p id='result'>{exc.detail}</p>"
        return "<!doctype html><meta charset='utf-8'><h1 id='result'>支付成功</h1>"

    @control.post("/orders/{out_trade_no}/pay")
    async def pay(out_trade_no: str) -> dict[str, Any]:
        return _pay(_trade(out_trade_no))

    @control.post("/orders/{out_trade_no}/fail")
    async def fail(out_trade_no: str) -> dict[str, Any]:
        trade = _trade(out_trade_no)
        if trade.state == "NOTPAY":
            trade.state = "PAYERROR"
        return _trade_view(trade)

    @control.post("/orders/{out_trade_no}/notify")
    async def renotify(out_trade_no: str) -> dict[str, Any]:
        """Sends the trade's notification again, now, without faults (a late duplicate)."""
        trade = _trade(out_trade_no)
        if trade.transaction_id is None:
            raise _error(409, "ORDER_NOT_PAID", "未支付的订单没有支付通知")
        notice = next(n for n in state.notices if n.out_trade_no == out_trade_no)
        await _deliver(notice, trade.notify_url, 0.0)
        return {"notice_id": notice.notice_id, "deliveries": notice.deliveries}

    @control.get("/orders")
    async def orders() -> list[dict[str, Any]]:
        return [_trade_view(t) for t in state.trades.values()]

    @control.get("/notices")
    async def notices() -> list[dict[str, Any]]:
        return [
            {"notice_id": n.notice_id, "out_trade_no": n.out_trade_no, "deliveries": n.deliveries}
            for n in state.notices
        ]

    @control.get("/ledger")
    async def ledger() -> dict[str, int]:
        return state.ledger()

    add_fault_control(control, state.faults)

    @control.put("/callback-faults")
    async def set_callback_faults(plan: CallbackFaults) -> CallbackFaults:
        nonlocal rng
        state.callbacks = plan
        rng = FaultInjector(FaultPlan(seed=plan.seed)).random
        return plan

    app.include_router(api)
    app.include_router(control)
    return app
