"""Issue 18's bugs, one test each; every one failed on the page before the fix.

The server is scripted (scripted_server.py) where the order or the timing of what arrives
has to be exact: these tests check what the page does with it, not generation.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.web.page_helpers import connected as _connected
from tests.web.page_helpers import send as _send
from tests.web.scripted_server import (
    CLOSE,
    ScriptedChatServer,
    answering,
    done,
    eventually,
    on_chat,
    reply_frames,
)

pytestmark = pytest.mark.browser


def _cards(page: Page) -> list[str]:
    """The conversation, one `kind: text` per card, in the order shown."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#messages > li:not([hidden])')].map((li) =>
              `${li.classList[1]}: ${li.querySelector('.bubble, .notice-text').textContent}`)"""
    )


def _chats(server: ScriptedChatServer) -> list[str]:
    return [m["prompt"] for m in server.received if m.get("action") == "chat"]


# 1. The reconnect notice lands below the reply it talks about.


def test_notices_and_a_prompt_that_waited_for_the_connection_keep_event_order(scripted, open_page):
    server = scripted(answering(lambda m: f"Answer to {m['prompt']}."))
    page = _connected(open_page(server.http_url))
    _send(page, "first")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")

    server.refusing = True
    server.push(CLOSE)
    expect(page.locator(".message.notice")).to_contain_text("The connection dropped")
    _send(page, "second")
    expect(page.locator(".message.prompt.queued")).to_contain_text("Waiting for the connection")
    server.refusing = False

    expect(page.locator(".message.reply").nth(1)).to_have_attribute(
        "data-reason", "end", timeout=20000
    )
    # The prompt went out on the new connection, after it was made and the conversation
    # attached again: it comes after the notice about the drop, and its reply right below it.
    assert _cards(page) == [
        "prompt: first",
        "reply: Answer to first.",
        "notice: The connection dropped and came back. The conversation goes on.",
        "prompt: second",
        "reply: Answer to second.",
    ]
    conversation = next(iter(server.conversations))
    assert [m["action"] for m in server.received] == ["chat", "attach", "chat"]
    assert server.received[2]["conversation"] == conversation  # the same memory goes on


def test_a_prompt_whose_reply_never_began_is_resent_below_the_notices(scripted, open_page):
    sent = {"chats": 0}

    def script(message: dict) -> list[tuple[float, dict]]:
        if message.get("action") != "chat":
            return []
        sent["chats"] += 1
        if sent["chats"] == 1:
            return [(0, CLOSE)]  # the connection drops before the reply begins
        return answering("Here it is.")(message)

    server = scripted(script)
    page = _connected(open_page(server.http_url))
    _send(page, "only question")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end", timeout=20000)
    assert _cards(page) == [
        "notice: The connection dropped and came back. The conversation goes on.",
        "prompt: only question",
        "reply: Here it is.",
    ]
    assert _chats(server) == ["only question", "only question"]
    # No id came for the first: the second starts the conversation, nothing to attach.
    assert [m["action"] for m in server.received] == ["chat", "chat"]


# 2. New cards are half-hidden under the composer.

TALL_REPLY = "\n\n".join(f"Paragraph {n} of a tall reply." for n in range(1, 16))


def _end_in_view(page: Page, selector: str) -> bool:
    """The last such card's end is in the conversation's visible area (not under the box)."""
    return page.evaluate(
        """(selector) => {
          const card = [...document.querySelectorAll(selector)].at(-1).getBoundingClientRect();
          const view = document.getElementById('conversation').getBoundingClientRect();
          return card.bottom > view.top && card.bottom <= view.bottom + 1;
        }""",
        selector,
    )


def test_a_new_card_ends_in_view_above_the_composer(scripted, open_page):
    def script(message: dict) -> list[tuple[float, dict]]:
        if message.get("prompt") == "too many":
            return [(0, {"type": "error", "code": "rate_limited", "message": "Slow down."})]
        return answering(TALL_REPLY)(message)

    server = scripted(script)
    page = _connected(open_page(server.http_url, viewport={"width": 800, "height": 600}))
    for n in range(2):
        _send(page, f"tall {n}")
        expect(page.locator(".message.reply").nth(n)).to_have_attribute("data-reason", "end")
    assert _end_in_view(page, ".message.reply")

    _send(page, "too many")
    expect(page.locator(".message.error")).to_be_visible()
    assert _end_in_view(page, ".message.error")

    server.push(CLOSE)
    expect(page.locator(".message.notice").last).to_contain_text("came back", timeout=20000)
    assert _end_in_view(page, ".message.notice")


# 3. A reply can stall for ever.


def test_a_reply_from_a_server_gone_silent_is_given_up_and_the_page_reconnects(scripted, open_page):
    # Not even `pong`: the network is gone, the socket not closed.
    server = scripted(on_chat(reply_frames("Half an answer")))
    page = _connected(open_page(server.http_url))
    _send(page, "hello")
    reply = page.locator(".message.reply")
    expect(reply).to_contain_text("Half an answer")
    # A few silent seconds: the page pings; no answer in time: the socket is dead. The
    # page connects again and attaches the conversation after the delta it has.
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting", timeout=30000)
    eventually(lambda: len(server.handshakes) == 2, timeout=30)
    eventually(lambda: any(m["action"] == "attach" for m in server.received))
    actions = [m["action"] for m in server.received]
    # What follows the attach may include a liveness ping of the new socket (a page made
    # visible checks its connection), so only what led to it is fixed.
    assert actions[: actions.index("attach") + 1] == ["chat", "ping", "attach"]
    assert server.received[actions.index("attach")]["seq"] == 0
    server.push({"type": "delta", "text": ", and the rest.", "seq": 1})
    server.push(done())
    expect(reply).to_have_attribute("data-reason", "end")
    expect(reply.locator(".bubble")).to_have_text("Half an answer, and the rest.")


def test_going_offline_mid_reply_is_noticed_and_coming_back_reconnects(scripted, open_page):
    def script(message: dict) -> list[tuple[float, dict]]:
        if message.get("action") == "ping":
            return [(0, {"type": "pong"})]
        return on_chat(reply_frames("Streaming along"))(message)

    server = scripted(script)
    page = _connected(open_page(server.http_url))
    _send(page, "hello")
    expect(page.locator(".message.reply")).to_contain_text("Streaming along")
    page.context.set_offline(True)
    # The browser says it is offline: the page pings at once, and nothing comes back.
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting", timeout=20000)
    expect(page.locator(".message.reply .meta")).to_have_text(
        "The connection dropped. The reply goes on when it is back…"
    )
    page.context.set_offline(False)
    expect(page.locator(".message.notice").last).to_contain_text("came back", timeout=20000)
    expect(page.locator("#status")).to_have_attribute("data-state", "generating")
    server.push({"type": "delta", "text": " to the end.", "seq": 1})
    server.push(done())
    expect(page.locator(".message.reply .bubble")).to_have_text("Streaming along to the end.")


# 4. Over-long prompts are only caught by the server.


def test_a_prompt_over_the_stages_limit_is_counted_and_never_sent(scripted, open_page):
    server = scripted(answering("Fine."), config={"maxPromptChars": 100})
    page = _connected(open_page(server.http_url))
    box, count = page.locator("#prompt"), page.locator("#prompt-count")
    box.fill("x" * 50)
    expect(count).to_be_hidden()
    box.fill("x" * 85)
    expect(count).to_have_text("85 / 100")
    box.fill("x" * 120)
    expect(count).to_have_text("120 / 100")
    expect(count).to_have_class(re.compile(r"\bover\b"))
    expect(page.locator("#composer-hint")).to_have_text(
        "Too long to send: 20 characters over the limit of 100."
    )
    expect(page.locator("#send")).to_have_attribute("aria-disabled", "true")
    box.press("Enter")
    page.locator("#send").dispatch_event("click")
    expect(box).to_have_value("x" * 120)
    assert page.locator(".message").count() == 0

    box.fill("short enough")
    box.press("Enter")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    assert _chats(server) == ["short enough"]  # the long one never left the page


def test_a_prompt_the_server_refuses_as_too_large_stays_only_in_the_box(scripted, open_page):
    """An older stack's config.json names no limit: the server's refusal is the check."""
    refusal = {"type": "error", "code": "too_large", "message": "The prompt is too long."}
    server = scripted(
        lambda m: [(0, refusal)] if m.get("action") == "chat" else [],
        config={"maxPromptChars": None},
    )
    page = _connected(open_page(server.http_url))
    _send(page, "y" * 300)
    expect(page.locator(".message.error")).to_contain_text("too long")
    expect(page.locator(".message.error")).to_contain_text("Your message is back in the box.")
    expect(page.locator("#prompt")).to_have_value("y" * 300)
    expect(page.locator(".message.prompt")).to_have_count(0)


# 5. A stray caret under lists and code while streaming.

AFTER = "(element) => getComputedStyle(element, '::after').content"


def test_the_streaming_caret_follows_the_text_not_the_block(scripted, open_page):
    server = scripted(on_chat(reply_frames("Steps:\n\n- one\n- two")))
    page = _connected(open_page(server.http_url))
    _send(page, "list please")
    bubble = page.locator(".message.reply .bubble")
    expect(bubble.locator("li")).to_have_count(2)
    assert bubble.locator("ul").evaluate(AFTER) == "none"
    assert bubble.locator("li").last.evaluate(AFTER) == '""'
    assert bubble.locator("li").first.evaluate(AFTER) == "none"

    server.push({"type": "delta", "text": "\n\n```python\nx = 1", "seq": 1})
    expect(bubble.locator("pre code")).to_have_text("x = 1")
    assert bubble.locator("ul").evaluate(AFTER) == "none"
    assert bubble.locator("li").last.evaluate(AFTER) == "none"
    assert bubble.locator("pre").evaluate(AFTER) == "none"
    assert bubble.locator(".code-block").evaluate(AFTER) == "none"
    assert bubble.locator("pre code").evaluate(AFTER) == '""'

    server.push(done())
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    assert bubble.locator("pre code").evaluate(AFTER) == "none"


# 6. Smaller ones.


def test_the_box_has_focus_when_the_page_opens(scripted, open_page):
    page = _connected(open_page(scripted(answering("Hi.")).http_url))
    expect(page.locator("#prompt")).to_be_focused()
    page.keyboard.type("typed at once")
    expect(page.locator("#prompt")).to_have_value("typed at once")


def test_on_a_touch_screen_enter_is_a_new_line_and_send_sends(scripted, open_page):
    server = scripted(answering("Two lines received."))
    page = _connected(
        open_page(
            server.http_url, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True
        )
    )
    box = page.locator("#prompt")
    expect(box).not_to_be_focused()  # a phone's keyboard opens only when the person asks
    box.tap()
    page.keyboard.type("line one")
    page.keyboard.press("Enter")
    page.keyboard.type("line two")
    expect(box).to_have_value("line one\nline two")
    assert box.get_attribute("enterkeyhint") == "enter"
    expect(page.locator("#empty-hint")).to_contain_text("Tap Send to send; Enter starts a new line")
    page.locator("#send").tap()
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    assert _chats(server) == ["line one\nline two"]


def test_a_prompt_that_has_not_gone_yet_offers_cancel_not_stop(scripted, open_page):
    server = scripted(answering("Hi."))
    server.refusing = True  # the server is down: the prompt can only wait
    page = open_page(server.http_url)
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    _send(page, "waiting prompt")
    expect(page.locator(".message.prompt.queued")).to_be_visible()
    expect(page.locator("#stop")).to_have_text("Cancel")
    expect(page.locator("#composer-hint")).to_have_text(
        "Not sent yet · Cancel (or Esc) takes it back"
    )
    page.locator("#stop").click()
    expect(page.locator(".message.prompt")).to_have_count(0)
    expect(page.locator("#prompt")).to_have_value("waiting prompt")
    expect(page.locator("#send")).to_be_visible()


def test_stopping_before_the_first_token_shows_no_empty_figures(scripted, open_page):
    def script(message: dict) -> list[tuple[float, dict]]:
        if message.get("action") == "chat":
            return [(0, {"type": "status", "state": "generating"})]
        if message.get("action") == "stop":
            stopped = done("stopped", completion_tokens=0, tokens_per_s=0.0, ttft_ms=None)
            return [(0, stopped)]
        return []

    server = scripted(script)
    page = _connected(open_page(server.http_url))
    _send(page, "never mind")
    expect(page.locator("#status")).to_have_attribute("data-state", "generating")
    page.locator("#stop").click()
    reply = page.locator(".message.reply")
    expect(reply).to_have_attribute("data-reason", "stopped")
    expect(reply.locator(".bubble")).to_have_text("Stopped before any text.")
    assert "tokens/s" not in reply.inner_text()
    assert "(no text)" not in reply.inner_text()


def test_bullets_in_a_reply_are_solid(scripted, open_page):
    server = scripted(answering("- one\n- two\n\n1. first"))
    page = _connected(open_page(server.http_url))
    _send(page, "a list")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "end")
    style = "(list) => getComputedStyle(list).listStyleType"
    assert page.locator(".message.reply ul").evaluate(style) == "disc"
    assert page.locator(".message.reply ol").evaluate(style) == "decimal"


CONTRAST = """
([selector, property, against]) => {
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const element = document.querySelector(selector);
  const style = getComputedStyle(element);
  const back = rgb(getComputedStyle(document.querySelector(against)).backgroundColor);
  // What is seen: the colour over the background, as far as the element is opaque.
  let alpha = Number(style.opacity);
  for (let node = element.parentElement; node; node = node.parentElement) {
    alpha *= Number(getComputedStyle(node).opacity);
  }
  const [r, g, b, a = 1] = rgb(style[property]);
  const seen = [r, g, b].map((c, i) => c * a * alpha + back[i] * (1 - a * alpha));
  const [l1, l2] = [luminance(seen), luminance(back)].sort((x, y) => y - x);
  return (l1 + 0.05) / (l2 + 0.05);
}
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_status_clock_and_the_box_edge_are_readable(scripted, open_page, scheme):
    server = scripted(answering("Hi."))
    page = _connected(open_page(server.http_url, color_scheme=scheme))
    page.locator("#prompt").blur()  # the box's own, unfocused edge
    page.locator("#status-clock").evaluate("(clock) => { clock.textContent = '12 s'; }")
    clock = page.evaluate(CONTRAST, ["#status-clock", "color", "body"])
    assert clock >= 4.5, clock  # text (WCAG 1.4.3)
    for against in ("body", "#prompt"):
        edge = page.evaluate(CONTRAST, ["#prompt", "borderTopColor", against])
        assert edge >= 3, (against, edge)  # a control's edge (WCAG 1.4.11)
