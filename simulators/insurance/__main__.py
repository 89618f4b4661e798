"""``python -m simulators.insurance``: the insurance centre simulator on the port of
CAREPATH_INSURANCE_BASE_URL, with accounts for the platform and for the HIS simulator."""

from __future__ import annotations

from fastapi import FastAPI

from core.settings import Settings
from simulators.insurance.app import InsuranceState, create_app
from simulators.serving import run_simulator

HIS_APP_ID = "his"


def his_app_secret(settings: Settings) -> str:
    return f"his-{settings.insurance_app_secret.get_secret_value()}"


def build_app(settings: Settings) -> FastAPI:
    state = InsuranceState(
        apps={
            settings.insurance_app_id: settings.insurance_app_secret.get_secret_value(),
            HIS_APP_ID: his_app_secret(settings),
        }
    )
    return create_app(state)


def main() -> None:
    run_simulator(
        build_app, base_url=lambda settings: settings.insurance_base_url, default_port=8086
    )


if __name__ == "__main__":
    main()
