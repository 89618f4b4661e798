"""``python -m simulators.his``: the HIS simulator on the port of CAREPATH_HIS_BASE_URL."""

from __future__ import annotations

from urllib.parse import urlparse

import uvicorn

from core.logs import configure_logging
from core.settings import get_settings
from simulators.his.app import create_app
from simulators.his.charging import InsuranceAccount
from simulators.insurance.__main__ import HIS_APP_ID, his_app_secret


def main() -> None:
    settings = get_settings()
    configure_logging(json=settings.json_logs, level=settings.log_level)
    his_url = urlparse(settings.his_base_url)
    app = create_app(
        webhook_target=f"http://{settings.api_host}:{settings.api_port}",
        webhook_secret=settings.his_webhook_secret.get_secret_value(),
        api_key=settings.his_api_key.get_secret_value(),
        insurance=InsuranceAccount(
            settings.insurance_base_url, HIS_APP_ID, his_app_secret(settings)
        ),
    )
    uvicorn.run(
        app,
        host=his_url.hostname or "127.0.0.1",
        port=his_url.port or 8081,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
