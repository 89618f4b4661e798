"""``python -m simulators.his``: the HIS simulator on the port of CAREPATH_HIS_BASE_URL."""

from __future__ import annotations

from fastapi import FastAPI

from core.settings import Settings
from simulators.his.app import create_app
from simulators.his.charging import InsuranceAccount
from simulators.insurance.__main__ import HIS_APP_ID, his_app_secret
from simulators.serving import platform_url, run_simulator


def build_app(settings: Settings) -> FastAPI:
    return create_app(
        webhook_target=platform_url(settings),
        webhook_secret=settings.his_webhook_secret.get_secret_value(),
        api_key=settings.his_api_key.get_secret_value(),
        insurance=InsuranceAccount(
            settings.insurance_base_url, HIS_APP_ID, his_app_secret(settings)
        ),
    )


def main() -> None:
    run_simulator(build_app, base_url=lambda settings: settings.his_base_url, default_port=8081)


if __name__ == "__main__":
    main()
