"""``python -m simulators.identity``: the real-name identity service on the port of
CAREPATH_IDENTITY_BASE_URL, knowing the HIS simulator's demo patients."""

from __future__ import annotations

from fastapi import FastAPI

from core.settings import Settings
from simulators.identity.app import create_app
from simulators.serving import run_simulator


def build_app(settings: Settings) -> FastAPI:
    return create_app(api_key=settings.identity_api_key.get_secret_value())


def main() -> None:
    run_simulator(
        build_app, base_url=lambda settings: settings.identity_base_url, default_port=8088
    )


if __name__ == "__main__":
    main()
