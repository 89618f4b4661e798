"""``python -m simulators.wechatpay``: the payment provider simulator on the port of
CAREPATH_WECHATPAY_API_BASE_URL, using the development key pairs under the data directory."""

from __future__ import annotations

from fastapi import FastAPI

from core.dev_keys import dev_payment_keys
from core.settings import Settings
from integrations.wechatpay import load_private_key, load_public_key
from simulators.serving import run_simulator
from simulators.wechatpay.app import WeChatPayState, create_app


def build_app(settings: Settings) -> FastAPI:
    keys = dev_payment_keys(settings.data_dir)
    state = WeChatPayState(
        mchid=settings.wechatpay_mchid,
        appid=settings.wechatpay_appid,
        apiv3_key=settings.wechatpay_apiv3_key.get_secret_value().encode(),
        merchant_public_key=load_public_key(keys.merchant.public_pem),
        platform_private_key=load_private_key(keys.platform.private_pem),
        platform_serial="SIMPLATFORM0001",
        public_url=settings.wechatpay_api_base_url,
    )
    return create_app(state)


def main() -> None:
    run_simulator(
        build_app, base_url=lambda settings: settings.wechatpay_api_base_url, default_port=8085
    )


if __name__ == "__main__":
    main()
