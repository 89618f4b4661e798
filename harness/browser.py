"""Debian's Chromium driven by Playwright (the SDK's own browser download is unreachable here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, BrowserContext, Page, async_playwright

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


async def sign_in_to_workbench(page: Page, base_url: str, username: str, password: str) -> None:
    """Opens the workbench, is sent to its sign-in page and signs in: the browser then lands on
    the first page the staff member's role may open."""
    await page.goto(f"{base_url}/w")
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码").fill(password)
    await page.get_by_role("button", name="登录").click()


async def draw_signature(page: Page) -> None:
    """A signature on the page's signature pad, drawn with the mouse as a finger would."""
    pad = page.locator("canvas.pad-canvas")
    # The mouse only reaches what is in the viewport.
    await pad.scroll_into_view_if_needed()
    box = await pad.bounding_box()
    assert box is not None
    x, y = box["x"] + 30, box["y"] + box["height"] / 2
    await page.mouse.move(x, y)
    await page.mouse.down()
    for step in range(1, 12):
        await page.mouse.move(x + step * 20, y + (15 if step % 2 else -15))
    await page.mouse.up()
