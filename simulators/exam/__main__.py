"""``python -m simulators.exam``: the physical-exam vendor on the port of CAREPATH_EXAM_BASE_URL,
pushing the guide, results and report of each new booking by itself a few seconds apart."""

from __future__ import annotations

from fastapi import FastAPI

from core.settings import Settings
from simulators.exam.app import create_app
from simulators.serving import platform_url, run_simulator

AUTO_PUSH_SECONDS = 3.0


def build_app(settings: Settings) -> FastAPI:
    return create_app(
        platform_url=platform_url(settings),
        api_key=settings.exam_api_key.get_secret_value(),
        secret=settings.exam_webhook_secret.get_secret_value(),
        auto_push_seconds=AUTO_PUSH_SECONDS,
    )


def main() -> None:
    run_simulator(build_app, base_url=lambda settings: settings.exam_base_url, default_port=8087)


if __name__ == "__main__":
    main()
