"""What the browser tests do to the page again and again."""

from __future__ import annotations

from playwright.sync_api import Page, expect


def connected(page: Page) -> Page:
    """`page`, once its status says the socket is open."""
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    return page


def send(page: Page, text: str) -> None:
    """Type `text` into the box and press Enter."""
    page.locator("#prompt").fill(text)
    page.locator("#prompt").press("Enter")
