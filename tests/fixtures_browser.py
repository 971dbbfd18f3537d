"""Real headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright, for testing web pages.

    def test_page(browser_page, queue_server):
        browser_page.goto(queue_server.base_url + "/console/r1#token=...")
        browser_page.get_by_role("button", name="Call next").click()

``browser`` is one Chromium per test session (started on first use, about 0.5 s);
``browser_page`` is a fresh context and page per test (no shared cookies or storage), with
console errors collected in ``browser_page.console_errors``. Take ``browser`` rather than calling
``sync_playwright()`` in a test: a second sync Playwright cannot start in a process where this one
runs ("Sync API inside the asyncio loop"), so such a test fails whenever a browser test ran before it;
a test that needs other launch flags uses ``browser.browser_type.launch(...)``. Playwright downloads no browser:
it launches the Debian package. A test skips only if Chromium is not installed at all.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A headless Chromium for the whole session (Playwright ``Browser``)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh --test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def browser_page(browser) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """A new page in its own context (1280x800, zh-CN), closed after the test; 5 s default timeout."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    context.set_default_timeout(5000)
    page = context.new_page()
    page.console_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()
