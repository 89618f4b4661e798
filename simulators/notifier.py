"""A simulator's own calls to our server (Twilio's status callbacks, WeChat's event pushes).

A provider's notifier sends a few at a time, not one connection per message: a bulk send's
thousands of callbacks, all in flight at once on httpx's default pool, cost the Twilio
simulator 42 ms of CPU per message (the pool re-examines every connection for every queued
request) and starved its own send endpoint on the shared machine. The rest wait here."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

IN_FLIGHT = 8


class Notifier:
    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT),
        )
        self._slots = asyncio.Semaphore(IN_FLIGHT)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        async with self._slots:
            return await self._http.post(url, **kwargs)

    async def aclose(self) -> None:
        await self._http.aclose()
