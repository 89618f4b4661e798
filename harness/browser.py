"""Debian's Chromium driven by Playwright (the SDK's own browser download is unreachable here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, BrowserContext, async_playwright

CHROMIUM = "/usr/bin/chromium"
# Flags for a closed network: without them Chromium keeps dialling Google services.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def phone(browser: Browser) -> BrowserContext:
    """A patient's phone: small touch screen, Chinese locale."""
    return await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, locale="zh-CN"
    )


async def desktop(browser: Browser) -> BrowserContext:
    """A staff workstation: the 1366×768 screen hospital PCs still have, Chinese locale."""
    return await browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")


async def tablet(browser: Browser) -> BrowserContext:
    """A ward tablet held in landscape: touch, 1024×768."""
    return await browser.new_context(
        viewport={"width": 1024, "height": 768}, has_touch=True, locale="zh-CN"
    )
