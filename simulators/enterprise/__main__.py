"""``python -m simulators.enterprise``: the demo service enterprise (ENT-DEMO) on the port of its
configured base URL, advancing each order by itself every few seconds."""

from __future__ import annotations

from fastapi import FastAPI

from core.settings import Settings
from simulators.enterprise.app import EnterpriseState, create_app
from simulators.serving import platform_url, run_simulator

CODE = "ENT-DEMO"


def build_app(settings: Settings) -> FastAPI:
    return create_app(
        EnterpriseState(code=CODE),
        platform_url=platform_url(settings),
        secret=settings.enterprise_webhook_secret.get_secret_value(),
        auto_progress_seconds=5.0,
    )


def main() -> None:
    run_simulator(
        build_app, base_url=lambda settings: settings.enterprise_base_urls[CODE], default_port=8084
    )


if __name__ == "__main__":
    main()
