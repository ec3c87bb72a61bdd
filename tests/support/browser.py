"""A real browser for tests: Debian's Chromium driven by pip ``playwright`` through its
executable path (``scripts/ci-chromium.sh`` installs it; playwright's own browser download
cannot work here). Screenshots go to ``.artifacts/screenshots/``.

Without Chromium or playwright a test is skipped; with ``CI`` set that is a failure
instead, so the pipeline cannot silently stop testing in a browser.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

#: where screenshots are kept (gitignored; CI keeps them as artifacts)
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots"
#: bound on anything the page must show, in milliseconds (playwright's unit)
SHOW_MS = 10_000
#: flags for a root user on a machine whose only network is the package registries: no
#: sandbox (root), and none of Chromium's own background connections
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


def missing(why: str) -> None:
    """Skip the test for want of the browser, or fail it under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{why} but CI is set: run scripts/ci-chromium.sh and install '.[dev]'")
    pytest.skip(why)


def chromium_path() -> str:
    found = os.environ.get("PATCHWIRE_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    if not found:
        missing("Debian's chromium is not installed (scripts/ci-chromium.sh)")
    return str(found)


@asynccontextmanager
async def chromium_page(viewport: tuple[int, int] = (1360, 900)) -> AsyncIterator[Any]:
    """A fresh page in headless Chromium, every wait bounded by :data:`SHOW_MS`; on exit,
    no JavaScript error may have happened on it."""
    executable = chromium_path()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[dev]')")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                viewport={"width": viewport[0], "height": viewport[1]})
            page = await context.new_page()
            page.set_default_timeout(SHOW_MS)
            page.set_default_navigation_timeout(SHOW_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page
            assert errors == [], f"JavaScript errors on the page: {errors}"
        finally:
            await browser.close()


async def shot(page: Any, name: str) -> None:
    """A full-page screenshot ``{name}.png`` in :data:`SCREENSHOTS`."""
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
