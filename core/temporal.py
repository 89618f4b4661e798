"""Temporal client connection shared by the API, workers and scripts."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from core.settings import Settings

# Pydantic models cross the wire as JSON; the same converter must be used by every client and
# worker, or payloads will not decode.
DATA_CONVERTER = pydantic_data_converter


async def connect_temporal(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
        tls=settings.temporal_tls,
        api_key=settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None,
    )
