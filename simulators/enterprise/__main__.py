"""``python -m simulators.enterprise``: the demo service enterprise (ENT-DEMO) on the port of its
configured base URL, advancing each order by itself every few seconds."""

from __future__ import annotations

from urllib.parse import urlparse

import uvicorn

from core.logs import configure_logging
from core.settings import get_settings
from simulators.enterprise.app import EnterpriseState, create_app

CODE = "ENT-DEMO"


def main() -> None:
    settings = get_settings()
    configure_logging(json=settings.json_logs, level=settings.log_level)
    url = urlparse(settings.enterprise_base_urls[CODE])
    app = create_app(
        EnterpriseState(code=CODE),
        platform_url=f"http://{settings.api_host}:{settings.api_port}",
        secret=settings.enterprise_webhook_secret.get_secret_value(),
        auto_progress_seconds=5.0,
    )
    uvicorn.run(
        app, host=url.hostname or "127.0.0.1", port=url.port or 8084, log_config=None,
        access_log=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
