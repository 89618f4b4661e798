"""Client for the payment provider, WeChat Pay API v3 (H5 payments), and the verifier of its
payment notifications.

Requests carry the merchant's RSA-SHA256 signature; answers and notifications are verified with
the platform public key (``Wechatpay-Signature`` over timestamp, nonce and body) and
notification resources decrypted with the APIv3 key (AEAD_AES_256_GCM). The base URL is
configuration: the simulator in development and tests, https://api.mch.weixin.qq.com in
production.

Errors split the way the sagas need them: ``ProviderUnavailable`` (network, timeout, 5xx, an
answer we cannot trust) is worth retrying; ``ProviderRefused`` carries the provider's error code
(ORDERPAID, ORDER_NOT_EXIST, INVALID_REQUEST...) and retrying cannot change it.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict

from integrations.refusals import Refused

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
# Notifications older than this are refused as replays (the provider's own retries are fresher).
NOTICE_TOLERANCE_SECONDS = 300


class ProviderUnavailable(Exception):
    pass


class ProviderRefused(Refused):
    pass


class InvalidNotice(Exception):
    """A notification that is not from the provider, is altered, or is a stale replay."""


def _pem(value: str) -> bytes:
    """Key material given inline (PEM text) or as a path to a PEM file."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    return Path(text).read_bytes()


def load_private_key(value: str) -> RSAPrivateKey:
    key = serialization.load_pem_private_key(_pem(value), password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("the merchant key must be an RSA private key")
    return key


def load_public_key(value: str) -> RSAPublicKey:
    key = serialization.load_pem_public_key(_pem(value))
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the platform key must be an RSA public key")
    return key


class Trade(BaseModel):
    model_config = ConfigDict(extra="ignore")

    out_trade_no: str
    trade_state: str
    transaction_id: str | None = None
    success_time: datetime | None = None
    amount_fen: int
    attach: str = ""


class RefundResult(BaseModel):
    refund_id: str
    out_refund_no: str
    status: str  # SUCCESS, PROCESSING, ABNORMAL, CLOSED
    amount_fen: int
    success_time: datetime | None = None


class BillLine(BaseModel):
    at: datetime
    out_trade_no: str
    transaction_id: str
    kind: str  # "payment" or "refund"
    amount_fen: int
    out_refund_no: str | None = None
    refund_id: str | None = None


def _trade(body: Mapping[str, Any]) -> Trade:
    return Trade(
        out_trade_no=body["out_trade_no"],
        trade_state=body["trade_state"],
        transaction_id=body.get("transaction_id"),
        success_time=body.get("success_time"),
        amount_fen=int(body["amount"]["total"]),
        attach=body.get("attach", ""),
    )


def _fen(yuan: str) -> int:
    return int((Decimal(yuan) * 100).to_integral_exact())


@dataclass(frozen=True)
class NoticeVerifier:
    """Checks a notification's signature and freshness and decrypts its resource."""

    platform_key: RSAPublicKey
    apiv3_key: bytes

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> None:
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            timestamp = lowered["wechatpay-timestamp"]
            nonce = lowered["wechatpay-nonce"]
            signature = base64.b64decode(lowered["wechatpay-signature"], validate=True)
        except (KeyError, ValueError) as exc:
            raise InvalidNotice("missing or malformed Wechatpay-* signature headers") from exc
        if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > (
            NOTICE_TOLERANCE_SECONDS
        ):
            raise InvalidNotice("notification timestamp outside the accepted window")
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        try:
            self.platform_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise InvalidNotice("notification signature does not match") from exc

    def decrypt(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        try:
            plain = AESGCM(self.apiv3_key).decrypt(
                resource["nonce"].encode(),
                base64.b64decode(resource["ciphertext"]),
                (resource.get("associated_data") or "").encode() or None,
            )
            decoded: dict[str, Any] = json.loads(plain)
        except (KeyError, ValueError, InvalidTag) as exc:
            raise InvalidNotice("notification resource cannot be decrypted") from exc
        return decoded

    def open(self, headers: Mapping[str, str], body: bytes) -> tuple[str, str, Trade]:
        """(notification id, event type, trade) of a genuine notification."""
        self.verify(headers, body)
        try:
            envelope = json.loads(body)
            notice_id, event_type = str(envelope["id"]), str(envelope["event_type"])
            resource = envelope["resource"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidNotice("notification body is not a v3 notification") from exc
        try:
            trade = _trade(self.decrypt(resource))
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidNotice("notification resource is not a transaction") from exc
        return notice_id, event_type, trade


class WeChatPayClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        mchid: str,
        appid: str,
        serial_no: str,
        private_key: RSAPrivateKey,
        verifier: NoticeVerifier,
    ) -> None:
        self._http = http
        self.mchid = mchid
        self.appid = appid
        self._serial = serial_no
        self._key = private_key
        self.verifier = verifier

    @classmethod
    def create(
        cls,
        *,
        base_url: str,
        mchid: str,
        appid: str,
        serial_no: str,
        private_key: str,
        platform_public_key: str,
        apiv3_key: str,
        timeout_seconds: float,
    ) -> WeChatPayClient:
        return cls(
            httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(timeout_seconds)),
            mchid=mchid,
            appid=appid,
            serial_no=serial_no,
            private_key=load_private_key(private_key),
            verifier=NoticeVerifier(load_public_key(platform_public_key), apiv3_key.encode()),
        )

    async def close(self) -> None:
        await self._http.aclose()

    def _authorization(self, method: str, target: str, body: bytes) -> str:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        message = f"{method}\n{target}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
        signature = base64.b64encode(
            self._key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        ).decode()
        return (
            f'{AUTH_SCHEME} mchid="{self.mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{self._serial}"'
        )

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, signed: bool = True
    ) -> httpx.Response:
        raw = json.dumps(body, ensure_ascii=False).encode() if body is not None else b""
        url = self._http.build_request(method, path).url
        target = url.raw_path.decode()
        headers = {
            "Authorization": self._authorization(method, target, raw),
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(method, path, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(exc.__class__.__name__) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise ProviderUnavailable(f"provider answered {response.status_code}")
        if response.status_code >= 400:
            try:
                error = response.json()
                raise ProviderRefused(str(error.get("code")), str(error.get("message")))
            except ValueError:
                raise ProviderRefused(str(response.status_code), response.text[:200]) from None
        if signed:
            try:
                self.verifier.verify(response.headers, response.content)
            except InvalidNotice as exc:
                # An answer we cannot authenticate is treated like no answer at all.
                raise ProviderUnavailable(f"unverifiable answer: {exc}") from exc
        return response

    async def create_h5_order(
        self,
        *,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        time_expire: datetime,
        notify_url: str,
        attach: str,
        client_ip: str = "127.0.0.1",
    ) -> str:
        """The H5 payment URL. The same out_trade_no with the same amount gives the same order."""
        response = await self._call(
            "POST",
            "/v3/pay/transactions/h5",
            {
                "appid": self.appid,
                "mchid": self.mchid,
                "description": description[:127],
                "out_trade_no": out_trade_no,
                "time_expire": time_expire.isoformat(timespec="seconds"),
                "notify_url": notify_url,
                "attach": attach,
                "amount": {"total": amount_fen, "currency": "CNY"},
                "scene_info": {"payer_client_ip": client_ip, "h5_info": {"type": "Wap"}},
            },
        )
        return str(response.json()["h5_url"])

    async def query_order(self, out_trade_no: str) -> Trade | None:
        try:
            response = await self._call(
                "GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={self.mchid}"
            )
        except ProviderRefused as exc:
            if exc.code == "ORDER_NOT_EXIST":
                return None
            raise
        return _trade(response.json())

    async def close_order(self, out_trade_no: str) -> None:
        """Raises ProviderRefused("ORDERPAID") when the patient paid before the close landed."""
        await self._call(
            "POST",
            f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            {"mchid": self.mchid},
        )

    async def refund(
        self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str
    ) -> RefundResult:
        """Idempotent per out_refund_no: asking again returns the refund already made."""
        response = await self._call(
            "POST",
            "/v3/refund/domestic/refunds",
            {
                "out_trade_no": out_trade_no,
                "out_refund_no": out_refund_no,
                "reason": reason[:80],
                "amount": {"refund": refund_fen, "total": total_fen, "currency": "CNY"},
            },
        )
        return self._refund(response.json())

    async def query_refund(self, out_refund_no: str) -> RefundResult | None:
        try:
            response = await self._call("GET", f"/v3/refund/domestic/refunds/{out_refund_no}")
        except ProviderRefused as exc:
            if exc.code == "RESOURCE_NOT_EXISTS":
                return None
            raise
        return self._refund(response.json())

    @staticmethod
    def _refund(body: Mapping[str, Any]) -> RefundResult:
        return RefundResult(
            refund_id=body["refund_id"],
            out_refund_no=body["out_refund_no"],
            status=body["status"],
            amount_fen=int(body["amount"]["refund"]),
            success_time=body.get("success_time"),
        )

    async def trade_bill(self, bill_date: date) -> list[BillLine]:
        """The provider's statement of the day (China time): payments and refunds."""
        meta = (await self._call("GET", f"/v3/bill/tradebill?bill_date={bill_date}")).json()
        parts = urlsplit(meta["download_url"])
        content = (await self._call("GET", f"{parts.path}?{parts.query}", signed=False)).content
        if hashlib.sha1(content).hexdigest() != meta["hash_value"]:  # noqa: S324 - protocol
            raise ProviderUnavailable("downloaded bill does not match its hash")
        return parse_trade_bill(content.decode("utf-8"))


def parse_trade_bill(text: str) -> list[BillLine]:
    """Lines of a v3 trade bill (CSV; every value prefixed with a backtick; a summary at the
    end). Refund lines carry the refund's own amount."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header = rows[0]
    lines: list[BillLine] = []
    for raw in rows[1:]:
        if not raw or not raw[0].startswith("`") or len(raw) != len(header):
            continue  # the summary header and totals
        row = {name: value.lstrip("`") for name, value in zip(header, raw, strict=True)}
        refund = row["交易状态"] == "REFUND"
        lines.append(
            BillLine(
                at=datetime.strptime(row["交易时间"], "%Y-%m-%d %H:%M:%S"),
                out_trade_no=row["商户订单号"],
                transaction_id=row["微信订单号"],
                kind="refund" if refund else "payment",
                amount_fen=_fen(row["退款金额"] if refund else row["应结订单金额"]),
                out_refund_no=row["商户退款单号"] if refund else None,
                refund_id=row["微信退款单号"] if refund else None,
            )
        )
    return lines
