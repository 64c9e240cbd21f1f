"""The chat page in Chromium against the real local twin: real handlers, real tiny model."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

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
    expect(page.locator("#status-text")).to_have_text("Ready")  # the figures are under the reply
    expect(page.locator("#announcer")).to_contain_text("Reply")
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


def test_the_stages_config_names_the_model_and_its_prompt_limit_is_kept(twin, open_page):
    """config.json comes from the stack (the twin serves what the deployment writes)."""
    page = _connected(open_page(twin.http_url))
    expect(page.locator("#model")).to_have_text("Model: SmolLM2-135M-Instruct.Q4_1")
    # An empty box sends nothing.
    page.locator("#prompt").press("Enter")
    assert page.locator(".message").count() == 0

    oversize = "word " * 1700  # 8,500 characters: over the stage's 8,000
    page.locator("#prompt").fill(oversize)
    expect(page.locator("#prompt-count")).to_have_text("8,500 / 8,000")
    expect(page.locator("#composer-hint")).to_contain_text("500 characters over the limit")
    page.locator("#prompt").press("Enter")
    expect(page.locator("#prompt")).to_have_value(oversize)
    assert page.locator(".message").count() == 0  # refused on the page: no round trip

    # The connection is open and the page ready for the next prompt.
    _send(page, "Say hello.")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", FINISHED, timeout=60000)
    expect(page.locator(".message")).to_have_count(2)


def test_settings_continue_and_regenerate_against_the_real_server(twin, open_page):
    """The buttons' protocol mapping (docs/protocol.md) as the real router takes it."""
    page = _connected(open_page(twin.http_url))
    page.locator("#settings summary").click()
    page.get_by_label("Max tokens").fill("8")
    page.get_by_label("Max tokens").press("Tab")
    _send(page, LONG_PROMPT)
    reply = page.locator(".message.reply")
    expect(reply).to_have_attribute("data-reason", "length", timeout=60000)
    expect(reply.locator(".meta")).to_contain_text("8 tokens")
    cut = reply.locator(".bubble").inner_text()

    updates = int(reply.get_attribute("data-updates"))
    reply.get_by_role("button", name="Continue the reply").click()
    # Ended again, with more text (a `busy` retry in between shows the old ending meanwhile).
    page.wait_for_function(
        """(before) => {
          const reply = document.querySelector('.message.reply');
          return /^(end|length)$/.test(reply.dataset.reason ?? '')
            && Number(reply.dataset.updates) > before;
        }""",
        arg=updates,
        timeout=60000,
    )
    assert reply.locator(".bubble").inner_text().startswith(cut.strip()[:20])
    assert len(reply.locator(".bubble").inner_text()) > len(cut)

    page.locator("#settings summary").click()  # it closed at the click on Continue
    page.get_by_role("button", name="Use the defaults").click()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Regenerate the reply").click()
    # The old reply is hidden at once, and gone when the new one starts.
    fresh = page.locator(".message.reply:not([hidden])")
    expect(fresh).to_have_attribute("data-reason", FINISHED, timeout=60000)
    expect(page.locator(".message.reply")).to_have_count(1)
    # The Continue was part of the one exchange: `reset` and the prompt again lose nothing.
    assert page.locator(".message.notice, .message.error").count() == 0


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

    own_twin.start()  # the same port, with a new, empty store: the conversation is gone
    expect(page.locator(".message.notice").last).to_contain_text(
        "no longer on the server", timeout=30000
    )
    expect(page.locator(".message.reply").nth(1)).to_have_attribute(
        "data-reason", FINISHED, timeout=60000
    )
    assert page.locator(".message.prompt.queued").count() == 0


def _frames(page: Page) -> dict[str, list[dict]]:
    """Every JSON frame the page sends and receives, from now on, in order."""
    frames: dict[str, list[dict]] = {"sent": [], "received": []}

    def watch(socket) -> None:
        socket.on("framesent", lambda payload: frames["sent"].append(json.loads(payload)))
        socket.on("framereceived", lambda payload: frames["received"].append(json.loads(payload)))

    page.on("websocket", watch)
    return frames


def _prompt_tokens(frames: dict[str, list[dict]]) -> int:
    return [m for m in frames["received"] if m.get("type") == "done"][-1]["usage"]["prompt_tokens"]


def test_a_dropped_connection_keeps_the_models_memory(twin, open_page):
    """After a drop the page attaches its conversation again: the follow-up reaches the model
    with the earlier turns (more prompt tokens than the same prompt in a new conversation)."""
    page = open_page(twin.http_url)
    frames = _frames(page)
    page.reload()  # the watch sees the page's socket from its start
    _connected(page)
    follow_up = "Say it again."
    _send(page, "My name is Ada. Say hello to me.")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", FINISHED, timeout=60000)
    conversation = next(m["id"] for m in frames["received"] if m.get("type") == "conversation")

    # The network goes: the page finds its socket dead and, back online, makes a new one.
    page.context.set_offline(True)
    page.evaluate("window.dispatchEvent(new Event('offline'))")
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting", timeout=20000)
    page.context.set_offline(False)
    expect(page.locator(".message.notice")).to_have_text(
        "The connection dropped and came back. The conversation goes on.", timeout=30000
    )
    assert frames["sent"][-1] == {"action": "attach", "conversation": conversation}
    _send(page, follow_up)
    expect(page.locator(".message.reply").nth(1)).to_have_attribute(
        "data-reason", FINISHED, timeout=60000
    )
    assert frames["sent"][-1]["conversation"] == conversation
    remembered = _prompt_tokens(frames)

    page.locator("#new-chat").click()
    _send(page, follow_up)
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", FINISHED, timeout=60000)
    assert "conversation" not in frames["sent"][-1]
    assert remembered > _prompt_tokens(frames)


def test_a_reload_mid_reply_shows_the_whole_reply_once_against_the_real_server(twin, open_page):
    """The page comes back from a reload with its conversation and attaches with the last
    delta it showed; the reply it then completes is the one the server kept, once."""
    page = open_page(twin.http_url)
    frames = _frames(page)
    page.reload()  # the watch sees the page's socket from its start
    _connected(page)
    _send(page, LONG_PROMPT)
    _updates_reach(page, 2)  # streaming: some text is on the page
    page.reload()  # the page resumes at once: no "connected" pause to wait for
    reply = page.locator(".message.reply")
    expect(reply).to_have_attribute("data-reason", FINISHED, timeout=90000)
    attaches = [m for m in frames["sent"] if m.get("action") == "attach"]
    resumed = [m for m in frames["received"] if m.get("type") == "attached"]
    assert attaches and resumed[-1]["reply"] == {"prompt": LONG_PROMPT}  # still running
    # Every delta of the reply reached the page, and none twice, over the two sockets
    # (the second asked only for what the first had not shown).
    seen_before = attaches[-1].get("seq", -1)
    first = [
        m["seq"]
        for m in frames["received"][: frames["received"].index(resumed[-1])]
        if m.get("type") == "delta"
    ]
    after = [
        m["seq"]
        for m in frames["received"][frames["received"].index(resumed[-1]) :]
        if m.get("type") == "delta"
    ]
    assert after and after[0] == seen_before + 1 and after == list(range(after[0], after[-1] + 1))
    assert seen_before in first
    assert page.locator(".message.prompt").count() == 1
    assert reply.count() == 1
    resumed_text = reply.locator(".bubble").inner_text()

    # What the server kept, as the page draws it from the conversation's turns.
    page.reload()
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", re.compile("."))
    expect(page.locator(".message.reply")).to_have_count(1)
    assert page.locator(".message.reply .bubble").inner_text() == resumed_text
