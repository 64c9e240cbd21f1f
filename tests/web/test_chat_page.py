"""The chat page in Chromium against the real local twin: real handlers, real tiny model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
FINISHED = re.compile(r"^(end|length)$")  # the model finished (or hit max_tokens) by itself
LONG_PROMPT = "Write a very long story about a dragon who learns to bake bread."

# Records each new text of the reply at every change of the page while it is still streaming.
WATCH_REPLY_GROWTH = """
() => {
  window.__growth = [];
  new MutationObserver(() => {
    const reply = document.querySelector("#messages .message.reply:last-child");
    if (reply && !reply.dataset.reason) {
      const text = reply.querySelector(".bubble").textContent;
      if (text && window.__growth.at(-1) !== text) window.__growth.push(text);
    }
  }).observe(document.getElementById("messages"),
             {subtree: true, childList: true, characterData: true, attributes: true});
}
"""


def _connected(page: Page) -> Page:
    expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=15000)
    return page


def _updates_reach(page: Page, count: int) -> None:
    page.wait_for_function(
        "count => Number(document.querySelector('#messages .reply')?.dataset.updates) >= count",
        arg=count,
        timeout=30000,
    )


def _send(page: Page, text: str) -> None:
    page.locator("#prompt").fill(text)
    page.locator("#prompt").press("Enter")


def test_the_answer_streams_in_over_several_updates(twin, open_page):
    page = _connected(open_page(twin.http_url))
    page.evaluate(WATCH_REPLY_GROWTH)
    box = page.locator("#prompt")
    # Keyboard only: Shift+Enter is a new line, Enter sends.
    box.focus()
    page.keyboard.type("Tell me about the sea.")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("Use three sentences.")
    expect(box).to_have_value("Tell me about the sea.\nUse three sentences.")
    assert page.locator(".message").count() == 0
    expect(page.locator("#stop")).to_be_hidden()
    page.keyboard.press("Enter")

    expect(page.locator(".message.prompt .bubble")).to_have_text(
        "Tell me about the sea.\nUse three sentences."
    )
    expect(box).to_have_value("")
    expect(page.locator("#stop")).to_be_visible()
    reply = page.locator(".message.reply")
    expect(reply).to_have_attribute("data-reason", FINISHED, timeout=60000)

    # At least three different texts were on screen before the reply ended.
    growth = page.evaluate("window.__growth")
    assert len(growth) >= 3, growth
    assert len(reply.locator(".bubble").inner_text().strip()) > 0
    assert int(reply.get_attribute("data-updates")) >= 3
    expect(reply.locator(".meta")).to_contain_text("time to first token")
    expect(reply.locator(".meta")).to_contain_text("tokens/s")
    expect(page.locator("#status")).to_have_attribute("data-state", "done")
    expect(page.locator("#status-text")).to_contain_text("time to first token")
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#stop")).to_be_hidden()
    expect(box).to_be_focused()


def test_stop_ends_a_long_reply_and_the_next_prompt_is_answered(twin, open_page):
    page = _connected(open_page(twin.http_url))
    _send(page, LONG_PROMPT)
    reply = page.locator(".message.reply")
    _updates_reach(page, 2)
    page.locator("#stop").click()
    expect(reply).to_have_attribute("data-reason", "stopped", timeout=15000)
    expect(reply.locator(".meta")).to_contain_text("Stopped")
    expect(page.locator("#stop")).to_be_hidden()

    _send(page, "Say hello.")
    expect(page.locator(".message.reply").nth(1)).to_have_attribute(
        "data-reason", FINISHED, timeout=60000
    )
    assert page.locator(".message.error").count() == 0


def test_new_chat_during_a_reply_clears_the_view_for_good(twin, open_page):
    page = _connected(open_page(twin.http_url))
    _send(page, LONG_PROMPT)
    _updates_reach(page, 1)
    page.locator("#new-chat").click()
    expect(page.locator("#messages > *")).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#prompt")).to_be_focused()

    # Typed at once: the old reply may still hold the connection (one reply at a time), so
    # the prompt waits for its end, however long that takes here. Whatever the old reply
    # still sends is not shown; the next prompt gets its own reply, and no refusal.
    _send(page, "Name one colour.")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", FINISHED, timeout=60000)
    expect(page.locator(".message")).to_have_count(2)
    expect(page.locator(".message.prompt")).to_contain_text("Name one colour.")
    expect(page.locator("#status")).to_have_attribute("data-state", "done")
    assert page.locator(".message.error, .message.prompt.unsent").count() == 0


def test_a_refused_prompt_is_explained_and_kept(twin, open_page):
    page = _connected(open_page(twin.http_url))
    # An empty box sends nothing.
    page.locator("#prompt").press("Enter")
    assert page.locator(".message").count() == 0

    oversize = "word " * 1700  # 8,500 characters: over the stage's 8,000
    _send(page, oversize)
    error = page.locator(".message.error")
    expect(error).to_contain_text("too long")
    expect(error.locator(".error-detail")).not_to_be_empty()
    expect(page.locator(".message.prompt.unsent")).to_contain_text("Not sent")
    expect(page.locator("#prompt")).to_have_value(oversize)
    assert page.locator(".message.reply").count() == 0

    # The connection stayed open and the page is ready for the next prompt.
    _send(page, "Say hello.")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", FINISHED, timeout=60000)


def test_the_page_reconnects_after_the_server_restarts(own_twin, open_page):
    page = _connected(open_page(own_twin.http_url))
    _send(page, "Say hello.")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", FINISHED, timeout=60000)

    own_twin.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#status-text")).to_contain_text("reconnecting")
    expect(page.locator(".message.notice").first).to_contain_text("connection dropped")
    # A prompt sent while disconnected waits for the connection.
    _send(page, "Name one fruit.")
    expect(page.locator(".message.prompt.queued")).to_contain_text("Waiting for the connection")

    own_twin.start()  # the same port
    expect(page.locator(".message.notice").last).to_contain_text("Reconnected", timeout=30000)
    expect(page.locator(".message.reply").nth(1)).to_have_attribute(
        "data-reason", FINISHED, timeout=60000
    )
    assert page.locator(".message.prompt.queued").count() == 0


def test_screenshot_of_a_finished_conversation(twin, open_page, update_screenshot):
    """Writes docs/screenshot.png when UPDATE_SCREENSHOT=1; otherwise checks it exists."""
    if not update_screenshot:
        assert SCREENSHOT.stat().st_size > 10_000
        return
    page = _connected(open_page(twin.http_url, viewport={"width": 1000, "height": 860}))
    for prompt in ("List three fruits.", "Write one line of Python that prints hello."):
        _send(page, prompt)
        expect(page.locator(".message.reply").last).to_have_attribute(
            "data-reason", FINISHED, timeout=60000
        )
    page.locator("#prompt").fill("Write a haiku about the sea.")
    page.locator("#prompt").blur()
    page.screenshot(path=str(SCREENSHOT))
