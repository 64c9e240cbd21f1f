"""Browser fixtures: the Chromium that CHROMIUM names, driven by Playwright, one for the session."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from infra.paths import REPO_ROOT

# CHROMIUM's value for Playwright's own build, as the Makefile's `browser` target installs it.
PLAYWRIGHT_BUILD = "playwright"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def makefile_chromium(*overrides: str) -> str:
    """What a recipe's shell sees as $CHROMIUM, as `make test` runs pytest: the Makefile's
    default, or what `overrides` (make's command-line settings) give it."""
    # Without our own CHROMIUM, and without the parent make's flags, which would carry its
    # own command-line settings.
    environment = {k: v for k, v in os.environ.items() if k not in ("CHROMIUM", "MAKEFLAGS")}
    script = 'print-chromium: ; @echo "$$CHROMIUM"'
    return subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", script, "print-chromium", *overrides],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


_makefile_default = cache(makefile_chromium)


class Chromium:
    """The browser the tests drive: $CHROMIUM (a path, or `playwright`), else the Makefile's."""

    @staticmethod
    def setting() -> str:
        # The Makefile owns the default and exports it; ask it rather than repeat it here.
        return os.environ.get("CHROMIUM") or _makefile_default()

    def executable(self, playwright) -> str:
        setting = self.setting()
        if setting == PLAYWRIGHT_BUILD:
            return playwright.chromium.executable_path
        if not Path(setting).exists():
            # Set explicitly (make and CI do), a wrong path fails instead of passing as skips.
            if "CHROMIUM" in os.environ:
                pytest.fail(f"CHROMIUM={setting} does not exist")
            pytest.skip(f"{setting} is not installed (make browser)")
        return setting

    def launch(self, playwright):
        executable = self.executable(playwright)
        # Playwright's own build is launched as Playwright picks it (its headless shell).
        options = {} if self.setting() == PLAYWRIGHT_BUILD else {"executable_path": executable}
        return playwright.chromium.launch(args=CHROMIUM_ARGS, headless=True, **options)


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    return Chromium()


@pytest.fixture(scope="session")
def playwright_driver():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(chromium, playwright_driver):
    browser = chromium.launch(playwright_driver)
    yield browser
    browser.close()


class PageErrors(list):
    """Uncaught exceptions and console errors from the page: a test fails if any appear."""


# Where a page clock is installed (any instant would do), and where it is paused: later,
# since the installed clock runs until paused, and pausing cannot go back in time (a busy
# machine can take a while between the two calls).
CLOCK_START_MS = 1_800_000_000_000
CLOCK_PAUSED_MS = CLOCK_START_MS + 3_600_000


@pytest.fixture
def open_page(browser) -> Iterator:
    """open_page(url, **context_options) -> a Playwright page; errors are checked afterwards.

    With `paused_clock=True` the page's timers, `Date` and `performance.now()` are fakes
    that stand still until the test moves them (`page.clock.run_for(ms)`)."""
    contexts = []
    errors = PageErrors()

    def _open(url: str, *, paused_clock: bool = False, **options):
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        if paused_clock:
            page.clock.install(time=CLOCK_START_MS)
            page.clock.pause_at(CLOCK_PAUSED_MS)
        page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))

        def on_console(message: Any) -> None:
            if message.type == "error" and not _expected_console_error(message.text):
                errors.append(f"console: {message.text}")

        page.on("console", on_console)
        page.goto(url)
        return page

    yield _open
    for context in contexts:
        context.close()
    assert not errors, errors


def _expected_console_error(text: str) -> bool:
    # Chromium logs every refused WebSocket handshake; the reconnection tests cause them.
    return "WebSocket connection to" in text


class Twin:
    """The real local twin (offline/) on a fixed port, so it can be stopped and started again."""

    def __init__(self, assembly: Path, port: int = 0) -> None:
        self.assembly = assembly
        self.port = port
        self.cloud: Any = None  # the OfflineCloud, once started

    @property
    def http_url(self) -> str:
        return str(self.cloud.http_url)

    @property
    def ws_url(self) -> str:
        return str(self.cloud.ws_url)

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


@pytest.fixture
def scripted():
    """scripted(script, config=...) -> a started ScriptedChatServer, stopped afterwards."""
    from tests.web.scripted_server import ScriptedChatServer

    servers: list[ScriptedChatServer] = []

    def start(script, **options) -> ScriptedChatServer:
        server = ScriptedChatServer(script, **options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
