"""What a screen reader hears: the status line says the state in a few words, each finished
reply is announced once, and the accessibility tree names every control.

The server is scripted (scripted_server.py): exact replies, not generation.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.web.scripted_server import CLOSE, done, on_chat, reply_frames

pytestmark = pytest.mark.browser

# Counts every change the live regions make, as a screen reader would be told of them.
COUNT_ANNOUNCEMENTS = """
() => {
  const watch = (id, into) => {
    const node = document.getElementById(id);
    new MutationObserver(() => into.push(node.textContent))
      .observe(node, {childList: true, subtree: true, characterData: true});
  };
  watch('announcer', window.__announced = []);
  watch('status-text', window.__statusWords = []);
}
"""


@pytest.fixture
def server(scripted):
    frames = reply_frames("Red, green", " and blue.\n\n```sh\nls\n```", pause=0.02, end=done())
    return scripted(on_chat(frames), config={"model": "tiny-test-model"})


def test_a_finished_reply_is_announced_once_and_the_status_keeps_to_the_state(server, open_page):
    page = open_page(server.http_url)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.evaluate(COUNT_ANNOUNCEMENTS)
    page.locator("#prompt").fill("Name three colours.")
    page.locator("#prompt").press("Enter")
    reply = page.locator(".message.reply")
    expect(reply).to_have_attribute("data-reason", "end")
    expect(reply).to_have_attribute("aria-busy", "false")

    # Once, politely, the words only (not the code block's label and button).
    expect(page.locator("#announcer")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#announcer")).to_have_text("Reply: Red, green and blue.\nls")
    assert page.evaluate("window.__announced") == ["Reply: Red, green and blue.\nls"]

    # The status line: states, no figures (those are under the reply).
    expect(page.get_by_role("status")).to_have_text("Ready")
    expect(reply.locator(".meta")).to_contain_text("tokens/s")
    for words in page.evaluate("window.__statusWords"):
        assert "tokens" not in words and "time to first token" not in words, words


def test_the_accessibility_tree_names_the_conversation_and_its_controls(server, open_page):
    page = open_page(server.http_url)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.locator("#prompt").fill("Name three colours.")
    page.locator("#prompt").press("Enter")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    expect(page.locator("body")).to_match_aria_snapshot(
        """
        - link "Skip to the message box"
        - banner:
          - heading "llambda" [level=1]
          - group:
            - text: Chats
          - group:
            - text: Settings
          - button "New chat"
        - region "Connection":
          - status: Ready
          - paragraph: "Model: tiny-test-model"
        - main "Conversation":
          - list:
            - listitem:
              - paragraph: "You:"
              - text: Name three colours.
              - button "Edit your last message"
            - listitem:
              - paragraph: "Model:"
              - paragraph: Red, green and blue.
              - text: sh
              - button "Copy sh code"
              - code: ls
              - paragraph: /time to first token 12 ms · 99\\.5 tokens\\/s · 9 tokens/
              - button "Copy the reply"
              - button "Regenerate the reply"
        - form "Your message":
          - textbox "Message"
          - button "Send"
          - paragraph: Enter to send · Shift+Enter for a new line
        """
    )


def test_reconnecting_is_said_once_without_the_attempt_count(server, open_page):
    page = open_page(server.http_url)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.evaluate(COUNT_ANNOUNCEMENTS)
    server.refusing = True
    server.push(CLOSE)
    expect(page.locator("#status-clock")).to_contain_text("attempt 3", timeout=20000)
    server.refusing = False
    expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=20000)
    # Said once each, however many attempts it took: the attempt number and the countdown
    # sit beside the live words, hidden from screen readers.
    assert page.evaluate("window.__statusWords") == [
        "Connection lost · reconnecting",
        "Reconnected",
    ]
    assert page.locator("#status-clock").get_attribute("aria-hidden") == "true"
