"""Browser fixtures: Debian's Chromium driven by Playwright, one browser for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


class PageErrors(list):
    """Uncaught exceptions and console errors from the page: a test fails if any appear."""


@pytest.fixture
def open_page(browser) -> Iterator:
    """open_page(url, **context_options) -> a Playwright page; errors are checked afterwards."""
    contexts = []
    errors = PageErrors()

    def _open(url: str, **options):
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda message: (
                message.type == "error"
                and not _expected_console_error(message.text)
                and errors.append(f"console: {message.text}")
            ),
        )
        page.goto(url)
        return page

    yield _open
    for context in contexts:
        context.close()
    assert not errors, errors


def _expected_console_error(text: str) -> bool:
    # Chromium logs every refused WebSocket handshake; the reconnection tests cause them.
    return "WebSocket connection to" in text


@pytest.fixture(scope="session")
def update_screenshot() -> bool:
    return os.environ.get("UPDATE_SCREENSHOT") == "1"


class Twin:
    """The real local twin (offline/) on a fixed port, so it can be stopped and started again."""

    def __init__(self, assembly: Path, port: int = 0) -> None:
        self.assembly = assembly
        self.port = port
        self.cloud = None

    @property
    def http_url(self) -> str:
        return self.cloud.http_url

    @property
    def ws_url(self) -> str:
        return self.cloud.ws_url

    def start(self) -> Twin:
        from offline.cloud import OfflineCloud
        from tests.offline.twin_helpers import LOCAL_ENVIRONMENT
        from tests.twin_assembly import TWIN_STAGE

        self.cloud = OfflineCloud(
            assembly=self.assembly, stage=TWIN_STAGE, port=self.port, environment=LOCAL_ENVIRONMENT
        )
        self.cloud.start()
        self.port = self.cloud.port
        return self

    def stop(self) -> None:
        if self.cloud is not None:
            self.cloud.stop()
            self.cloud = None


@pytest.fixture(scope="module")
def twin(assemblies) -> Iterator[Twin]:
    """The whole chat on this machine: real handlers, the tiny model on llama.cpp."""
    twin = Twin(assemblies.get()).start()
    yield twin
    twin.stop()


@pytest.fixture
def own_twin(assemblies) -> Iterator[Twin]:
    """A twin for one test that stops and restarts it."""
    twin = Twin(assemblies.get()).start()
    yield twin
    twin.stop()
