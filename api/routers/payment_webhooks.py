"""The payment provider's notifications (WeChat Pay v3 ``notify_url``).

Verified (platform signature over timestamp, nonce and body; a stale timestamp is a replay),
decrypted, deduplicated by notification id and handed to the order's saga. The provider reads
only the status: 2xx means received; anything else makes it deliver again later, which is what
we want when Temporal or the database is briefly unavailable.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse, Response
from temporalio.service import RPCError

from api.deps import ContainerDep, SessionDep
from core.logs import get_logger
from integrations.wechatpay import InvalidNotice
from services.payments import accept_notice

router = APIRouter(prefix="/webhooks/wechatpay", tags=["provider webhooks"])
log = get_logger(__name__)


@router.post("/notify")
async def notify(request: Request, container: ContainerDep, session: SessionDep) -> Response:
    body = await request.body()
    try:
        await accept_notice(session, container.payments, request.headers, body)
        await session.commit()
    except InvalidNotice as exc:
        log.warning("payment notice refused", reason=str(exc))
        return JSONResponse(
            {"code": "FAIL", "message": "签名验证失败"}, status.HTTP_401_UNAUTHORIZED
        )
    except RPCError as exc:
        log.error("payment notice not delivered to its saga", error=str(exc))
        return JSONResponse(
            {"code": "FAIL", "message": "系统繁忙"}, status.HTTP_503_SERVICE_UNAVAILABLE
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
