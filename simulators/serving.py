"""What every ``python -m simulators.<name>`` does: read the settings, configure logging and
serve the simulator's app on the host and port of the base URL the platform is configured to
call it at. Each ``__main__`` supplies only that URL and how to build its app."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

import uvicorn
from fastapi import FastAPI

from core.logs import configure_logging
from core.settings import Settings, get_settings


def platform_url(settings: Settings) -> str:
    """Where the simulators reach our API (webhooks, callbacks)."""
    return f"http://{settings.api_host}:{settings.api_port}"


def run_simulator(
    build_app: Callable[[Settings], FastAPI],
    *,
    base_url: Callable[[Settings], str],
    default_port: int,
) -> None:
    settings = get_settings()
    configure_logging(json=settings.json_logs, level=settings.log_level)
    url = urlparse(base_url(settings))
    uvicorn.run(
        build_app(settings),
        host=url.hostname or "127.0.0.1",
        port=url.port or default_port,
        log_config=None,
        access_log=False,
    )
