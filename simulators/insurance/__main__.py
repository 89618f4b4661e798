"""``python -m simulators.insurance``: the insurance centre simulator on the port of
CAREPATH_INSURANCE_BASE_URL, with accounts for the platform and for the HIS simulator."""

from __future__ import annotations

from urllib.parse import urlparse

import uvicorn

from core.logs import configure_logging
from core.settings import Settings, get_settings
from simulators.insurance.app import InsuranceState, create_app

HIS_APP_ID = "his"


def his_app_secret(settings: Settings) -> str:
    return f"his-{settings.insurance_app_secret.get_secret_value()}"


def main() -> None:
    settings = get_settings()
    configure_logging(json=settings.json_logs, level=settings.log_level)
    url = urlparse(settings.insurance_base_url)
    state = InsuranceState(
        apps={
            settings.insurance_app_id: settings.insurance_app_secret.get_secret_value(),
            HIS_APP_ID: his_app_secret(settings),
        }
    )
    uvicorn.run(
        create_app(state),
        host=url.hostname or "127.0.0.1",
        port=url.port or 8086,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
