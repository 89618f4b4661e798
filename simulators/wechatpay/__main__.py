"""``python -m simulators.wechatpay``: the payment provider simulator on the port of
CAREPATH_WECHATPAY_API_BASE_URL, using the development key pairs under the data directory."""

from __future__ import annotations

from urllib.parse import urlparse

import uvicorn

from core.dev_keys import dev_payment_keys
from core.logs import configure_logging
from core.settings import get_settings
from integrations.wechatpay import load_private_key, load_public_key
from simulators.wechatpay.app import WeChatPayState, create_app


def main() -> None:
    settings = get_settings()
    configure_logging(json=settings.json_logs, level=settings.log_level)
    keys = dev_payment_keys(settings.data_dir)
    url = urlparse(settings.wechatpay_api_base_url)
    state = WeChatPayState(
        mchid=settings.wechatpay_mchid,
        appid=settings.wechatpay_appid,
        apiv3_key=settings.wechatpay_apiv3_key.get_secret_value().encode(),
        merchant_public_key=load_public_key(keys.merchant.public_pem),
        platform_private_key=load_private_key(keys.platform.private_pem),
        platform_serial="SIMPLATFORM0001",
        public_url=settings.wechatpay_api_base_url,
    )
    uvicorn.run(
        create_app(state),
        host=url.hostname or "127.0.0.1",
        port=url.port or 8085,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
