"""The README's pictures of the chat: `make screenshots` writes them into docs/.

It runs the twin of the synthesized stage (TWIN_ASSEMBLY, as `make test` sets it) with the
real tiny model, and has the Chromium the browser tests use (CHROMIUM) hold a short
conversation: on a desktop in light mode (docs/screenshot.png), and on a phone in dark
mode (docs/screenshot-phone-dark.png), then the phone's list of conversations
(docs/screenshot-phone-chats-dark.png). The model's words differ from run to run.

    python -m tests.web.screenshots [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect, sync_playwright

from infra.paths import REPO_ROOT
from tests.web.conftest import Chromium, Twin
from tests.web.page_helpers import send

FINISHED = re.compile(r"^(end|length)$")  # the model finished (or hit max_tokens) by itself
# The tiny model on a busy 2-core machine; the page itself is not what is waited for.
REPLY_TIMEOUT_MS = 120_000
# Asked for the shapes the picture shows: a numbered list, then code.
DESKTOP_PROMPTS = (
    "Give a numbered list of three fruits.",
    "Write Python code that prints hello, in a code block.",
)
PHONE_PROMPT = "Write a Python function that adds two numbers, in a code block."
PHONE_EARLIER_PROMPT = "Name three rivers."


def _open(browser: Browser, url: str, **options: Any) -> Page:
    page = browser.new_page(**options)
    page.goto(url)
    # The router's first cold start in the twin comes first.
    expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=30_000)
    return page


def _finished(page: Page) -> None:
    reply = page.locator(".message.reply").last
    expect(reply).to_have_attribute("data-reason", FINISHED, timeout=REPLY_TIMEOUT_MS)


def desktop(browser: Browser, url: str, path: Path) -> None:
    """Two finished replies (a list, then code), and the next prompt typed but not sent."""
    page = _open(browser, url, viewport={"width": 1000, "height": 860}, color_scheme="light")
    for prompt in DESKTOP_PROMPTS:
        send(page, prompt)
        _finished(page)
    page.locator("#prompt").fill("Write a haiku about the sea.")
    page.locator("#prompt").blur()
    page.screenshot(path=str(path))
    page.context.close()


def phone(browser: Browser, url: str, path: Path, chats_path: Path) -> None:
    """A reply with a code block on a phone, in dark mode, sent with a tap; then the list of
    conversations (an earlier one, and this one, current) opened over it."""
    page = _open(
        browser,
        url,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        color_scheme="dark",
    )
    # An earlier conversation, for the list (on a touch screen Enter is a new line).
    page.locator("#prompt").fill(PHONE_EARLIER_PROMPT)
    page.locator("#send").tap()
    _finished(page)
    page.locator("#new-chat").tap()
    page.locator("#prompt").fill(PHONE_PROMPT)
    page.locator("#send").tap()
    _finished(page)
    page.locator("#prompt").blur()
    page.screenshot(path=str(path))
    page.locator("#chats summary").tap()
    page.screenshot(path=str(chats_path))
    page.context.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.web.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs", help="default: docs/")
    args = parser.parse_args(argv)
    assembly = Path(os.environ.get("TWIN_ASSEMBLY") or REPO_ROOT / "cdk.out.dev")
    twin = Twin(assembly).start()
    try:
        with sync_playwright() as playwright:
            browser = Chromium().launch(playwright)
            try:
                desktop(browser, twin.http_url, args.out / "screenshot.png")
                phone(
                    browser,
                    twin.http_url,
                    args.out / "screenshot-phone-dark.png",
                    args.out / "screenshot-phone-chats-dark.png",
                )
            finally:
                browser.close()
    finally:
        twin.stop()
    names = ("screenshot.png", "screenshot-phone-dark.png", "screenshot-phone-chats-dark.png")
    print("wrote", ", ".join(str(args.out / name) for name in names))


if __name__ == "__main__":
    main()
