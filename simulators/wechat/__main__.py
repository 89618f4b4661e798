"""``python -m simulators.wechat``: the WeChat simulator on the port of
CAREPATH_WECHAT_API_BASE_URL, pushing events to our API's /webhooks/wechat."""

from __future__ import annotations

from urllib.parse import urlparse

import uvicorn

from core.logs import configure_logging
from core.settings import get_settings
from simulators.wechat.app import WeChatState, create_app

# Demo patients that follow the official account (bound with `make demo --wechat`).
DEMO_FOLLOWERS = {f"oDemo{n:04d}" for n in range(1, 6)}


def main() -> None:
    settings = get_settings()
    configure_logging(json=settings.json_logs, level=settings.log_level)
    url = urlparse(settings.wechat_api_base_url)
    state = WeChatState(
        appid=settings.wechat_appid,
        secret=settings.wechat_secret.get_secret_value(),
        server_token=settings.wechat_token.get_secret_value(),
        event_url=f"http://{settings.api_host}:{settings.api_port}/webhooks/wechat",
        followers=set(DEMO_FOLLOWERS),
        template_ids=set(settings.wechat_template_ids.values()),
    )
    uvicorn.run(
        create_app(state),
        host=url.hostname or "127.0.0.1",
        port=url.port or 8083,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
