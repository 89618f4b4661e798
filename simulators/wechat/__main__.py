"""``python -m simulators.wechat``: the WeChat simulator on the port of
CAREPATH_WECHAT_API_BASE_URL, pushing events to our API's /webhooks/wechat."""

from __future__ import annotations

from fastapi import FastAPI

from core.settings import Settings
from simulators.serving import platform_url, run_simulator
from simulators.wechat.app import WeChatState, create_app

# Demo patients that follow the official account (bound with `make demo --wechat`).
DEMO_FOLLOWERS = {f"oDemo{n:04d}" for n in range(1, 6)}


def build_app(settings: Settings) -> FastAPI:
    state = WeChatState(
        appid=settings.wechat_appid,
        secret=settings.wechat_secret.get_secret_value(),
        server_token=settings.wechat_token.get_secret_value(),
        event_url=f"{platform_url(settings)}/webhooks/wechat",
        followers=set(DEMO_FOLLOWERS),
        template_ids=set(settings.wechat_template_ids.values()),
    )
    return create_app(state)


def main() -> None:
    run_simulator(
        build_app, base_url=lambda settings: settings.wechat_api_base_url, default_port=8083
    )


if __name__ == "__main__":
    main()
